# SPDX-License-Identifier: GPL-2.0-or-later
"""Split-ring driver logic, checked without a kernel (in-process fake device)."""

import os
import struct
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from vhostblk import abi as abimod  # noqa: E402
from vhostblk import virtio as V  # noqa: E402
from vhostblk.blkops import read_data, read_req, write_req  # noqa: E402
from vhostblk.driver import Session  # noqa: E402
from vhostblk.fakedev import FakeVhostBlk  # noqa: E402
from vhostblk.guestmem import GuestMemory  # noqa: E402
from vhostblk.virtq import QueueFull, SplitQueue  # noqa: E402

ABI = abimod.Abi(REPO / "kmod-src/include/uapi/linux/vhost_blk.h")


@pytest.fixture
def mem():
    m = GuestMemory(1 << 20)
    yield m
    m.close()


def u16(mem, gpa):
    return struct.unpack("<H", mem.read(gpa, 2))[0]


# --- event index arithmetic -------------------------------------------------------
@pytest.mark.parametrize("event,new,old,want", [
    (0, 1, 0, True),            # first entry crosses event 0
    (5, 5, 0, False),           # event 5 not yet passed (needs new > 5)
    (5, 6, 0, True),
    (5, 10, 6, False),          # already past before old
    (65535, 0, 65534, True),    # wraps: 65534 -> 0 passes 65535
    (65535, 1, 0, False),
    (10, 3, 65530, False),      # wrapped window 65530..3 does not contain 10
    (1, 3, 65530, True),        # but contains 1
])
def test_vring_need_event(event, new, old, want):
    assert V.vring_need_event(event, new, old) is want


def test_ring_sizes():
    assert V.ring_sizes(256) == (4096, 4 + 512 + 2, 4 + 2048 + 2)


# --- descriptor tables and avail ring -------------------------------------------
def test_chain_layout(mem):
    vq = SplitQueue(mem, 8)
    head = vq.add([(0x1000, 16, False), (0x2000, 512, True), (0x3000, 1, True)], "tok")
    d0 = vq.read_desc(head)
    d1 = vq.read_desc(d0[3])
    d2 = vq.read_desc(d1[3])
    assert d0 == (0x1000, 16, V.DESC_F_NEXT, d0[3])
    assert d1[:3] == (0x2000, 512, V.DESC_F_NEXT | V.DESC_F_WRITE)
    assert d2[:3] == (0x3000, 1, V.DESC_F_WRITE)
    assert u16(mem, vq.avail + 2) == 1
    assert u16(mem, vq.avail + 4) == head
    assert vq.num_free() == 5


def test_indirect_layout(mem):
    vq = SplitQueue(mem, 8, indirect=True, indirect_max=4)
    head = vq.add([(0x1000, 16, False), (0x2000, 512, True), (0x3000, 1, True)], "tok")
    addr, length, flags, _next = vq.read_desc(head)
    assert flags == V.DESC_F_INDIRECT and length == 48
    entries = [V.DESC.unpack(mem.read(addr + 16 * i, 16)) for i in range(3)]
    assert entries[0] == (0x1000, 16, V.DESC_F_NEXT, 1)
    assert entries[1] == (0x2000, 512, V.DESC_F_NEXT | V.DESC_F_WRITE, 2)
    assert entries[2] == (0x3000, 1, V.DESC_F_WRITE, 0)
    assert vq.num_free() == 7
    with pytest.raises(ValueError):
        vq.add([(0x1000, 1, False)] * 5, "too long")


def test_queue_full_and_reuse(mem):
    vq = SplitQueue(mem, 4)
    vq.add([(0x1000, 16, False), (0x2000, 1, True)], "a")
    vq.add([(0x1000, 16, False), (0x2000, 1, True)], "b")
    with pytest.raises(QueueFull):
        vq.add([(0x1000, 16, False)], "c")
    # play device: complete "b" then "a"
    heads = [u16(mem, vq.avail + 4 + 2 * i) for i in range(2)]
    for slot, h in enumerate(reversed(heads)):
        mem.write(vq.used + 4 + 8 * slot, struct.pack("<II", h, 1))
    mem.write(vq.used + 2, struct.pack("<H", 2))
    assert [t for t, _len in vq.get_used()] == ["b", "a"]
    assert vq.num_free() == 4


def test_indices_wrap_around(mem):
    vq = SplitQueue(mem, 4)
    vq.reset_state(65533)
    done = []
    for i in range(10):
        vq.add([(0x1000 + i, 16, False)], i)
        slot = (65533 + i) % 4
        assert u16(mem, vq.avail + 4 + 2 * slot) == vq.read_desc(0)[3] * 0 + u16(
            mem, vq.avail + 4 + 2 * slot)
        # device completes it immediately, writing used at the wrapped position
        head = u16(mem, vq.avail + 4 + 2 * slot)
        mem.write(vq.used + 4 + 8 * slot, struct.pack("<II", head, 0))
        mem.write(vq.used + 2, struct.pack("<H", (65533 + i + 1) & 0xFFFF))
        done += [t for t, _len in vq.get_used()]
    assert done == list(range(10))
    assert vq.avail_idx == (65533 + 10) & 0xFFFF == 7
    assert u16(mem, vq.avail + 2) == 7
    assert vq.last_used == 7


def test_need_kick_no_notify_and_event_idx(mem):
    vq = SplitQueue(mem, 8)
    vq.add([(0x1000, 16, False)], 0)
    assert vq.need_kick() is True
    assert vq.need_kick() is False            # nothing new
    mem.write(vq.used, struct.pack("<H", V.USED_F_NO_NOTIFY))
    vq.add([(0x1000, 16, False)], 1)
    assert vq.need_kick() is False
    ev = SplitQueue(mem, 8, event_idx=True)
    avail_event = ev.used + 4 + 8 * 8
    mem.write(avail_event, struct.pack("<H", 0))
    ev.add([(0x1000, 16, False)], 0)           # 0 -> 1 passes avail_event 0
    assert ev.need_kick() is True
    mem.write(avail_event, struct.pack("<H", 5))
    ev.add([(0x1000, 16, False)], 1)           # 1 -> 2 does not pass 5
    assert ev.need_kick() is False


def test_enable_cb_sets_used_event(mem):
    vq = SplitQueue(mem, 8, event_idx=True)
    vq.reset_state(300)
    vq.enable_cb()
    assert u16(mem, vq.avail + 4 + 2 * 8) == 300
    plain = SplitQueue(mem, 8)
    plain.disable_cb()
    assert u16(mem, plain.avail) == V.AVAIL_F_NO_INTERRUPT
    plain.enable_cb()
    assert u16(mem, plain.avail) == 0


# --- against the in-process fake device -------------------------------------------
@pytest.fixture
def backing(tmp_path):
    p = tmp_path / "disk.img"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, 4 << 20)
    yield fd
    os.close(fd)


@pytest.mark.parametrize("want", [0, V.bit(V.F_INDIRECT_DESC) | V.bit(V.F_EVENT_IDX)])
def test_fake_device_roundtrip_across_wrap(backing, want):
    s = Session(lambda: FakeVhostBlk(ABI), 4 << 20, 1, 16, want=want, backend=(backing, 0))
    try:
        s.start()
        vq = s.vqs[0]
        vq.reset_state(65530)                   # driver and device both start near wrap
        s.dev.set_vring_base(0, 65530)
        vq.enable_cb()
        for rnd in range(6):                    # 6 rounds x 3 requests crosses 65535
            datas = [bytes([rnd * 16 + i]) * 1024 for i in range(3)]
            reqs = [write_req(s, 8 * i, d, nsegs=2) for i, d in enumerate(datas)]
            s.run(0, reqs, timeout=5)
            assert [r.status for r in reqs] == [V.S_OK] * 3
            reads = [read_req(s, 8 * i, 2) for i in range(3)]
            s.run(0, reads, timeout=5)
            assert [read_data(s, r) for r in reads] == datas
            assert all(r.used_len == 1025 for r in reads)
            s.reset_scratch()
        assert vq.avail_idx < 65530               # wrapped
        assert s.dev.get_vring_base(0) == vq.avail_idx
    finally:
        s.close()


def test_wait_times_out_when_device_is_silent(backing):
    class Mute(FakeVhostBlk):
        def _process(self, q):
            pass
    s = Session(lambda: Mute(ABI), 1 << 20, 1, 8, backend=(backing, 0))
    try:
        s.start()
        from vhostblk.driver import WaitTimeout
        t0 = time.monotonic()
        with pytest.raises(WaitTimeout):
            s.run(0, [read_req(s, 0, 1)], timeout=0.3)
        assert time.monotonic() - t0 < 3
    finally:
        s.close()


def test_ring_error_is_reported(backing):
    s = Session(lambda: FakeVhostBlk(ABI), 1 << 20, 1, 8, backend=(backing, 0))
    try:
        s.start()
        vq = s.vqs[0]
        vq.write_desc(0, 0x1000, 16, V.DESC_F_NEXT, 0)      # loop to itself
        vq.push_head(0)
        s.kick_now(0)
        from vhostblk.driver import RingError
        with pytest.raises(RingError):
            s.wait([object()], timeout=3)
    finally:
        s.close()
