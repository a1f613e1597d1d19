# SPDX-License-Identifier: GPL-2.0-or-later
"""The I/O side of the lifecycle fuzzer (racefuzz): one thread per queue, data checked.

Each queue owns its own range of 4 KiB blocks of the backing, so what a read must return is known:
the last write that completed OK there (``Expected``). A write that failed, or was in flight when
the device was closed, makes its blocks unknown; a write the device never took (the ring was reset
before it got there) leaves them as they were.

Now and then the thread resets its own ring the way a VMM does on a virtio reset, with requests in
flight: ``GET_VRING_BASE`` (stops the queue; every request it took must be in the used ring when it
returns), then a fresh ring at a random index (``SET_VRING_NUM``/``BASE``/``ADDR``). Requests past
that index were never taken: they are forgotten.
"""

import os
import select
import threading
import time

from . import virtio as V

BLOCK = 4096
MAX_BLOCKS = 4                  # blocks per request
SLOTS = 16                      # requests per queue at most in flight
ID_LEN = V.ID_BYTES
_UNSET = 0xEE                   # status byte before the device writes it


class Expected:
    """Block number -> bytes the backing must hold there (None: unknown). Shared by all rounds."""

    def __init__(self):
        self.blocks = {}
        self.lock = threading.Lock()

    def get(self, block):
        with self.lock:
            return self.blocks.get(block)

    def set(self, block, data):
        with self.lock:
            self.blocks[block] = data

    def forget(self, block):
        with self.lock:
            self.blocks[block] = None


class Slot:
    """One request buffer set in guest RAM: header, up to MAX_BLOCKS of data, status byte.

    Duck-types driver.Request for Session.submit / Session.reap."""

    __slots__ = ("hdr", "data", "status_gpa", "kind", "block", "nblocks", "payload", "pos",
                 "ro_gen", "token", "submitted", "used_len", "status", "segs", "data_writable")

    def __init__(self, mem, arena):
        self.hdr = arena
        self.status_gpa = arena + 64
        self.data = arena + BLOCK
        self.kind = None
        self.segs = []
        self.data_writable = False

    def prepare(self, mem, kind, block=0, nblocks=0, payload=b""):
        self.kind, self.block, self.nblocks, self.payload = kind, block, nblocks, payload
        self.used_len = self.status = None
        rtype = {"write": V.T_OUT, "read": V.T_IN, "flush": V.T_FLUSH, "get_id": V.T_GET_ID}[kind]
        mem.write(self.hdr, V.OUTHDR.pack(rtype, 0, block * (BLOCK // V.SECTOR)))
        mem.write(self.status_gpa, bytes([_UNSET]))
        if kind == "write":
            mem.write(self.data, payload)
            self.segs, self.data_writable = [(self.data, len(payload))], False
        elif kind == "read":
            mem.fill(self.data, nblocks * BLOCK, 0xA5)
            self.segs, self.data_writable = [(self.data, nblocks * BLOCK)], True
        elif kind == "get_id":
            mem.fill(self.data, ID_LEN, 0xA5)
            self.segs, self.data_writable = [(self.data, ID_LEN)], True
        else:
            self.segs, self.data_writable = [], True

    def bufs(self):
        return ([(self.hdr, V.OUTHDR.size, False)]
                + [(g, n, self.data_writable) for g, n in self.segs]
                + [(self.status_gpa, 1, True)])

    @staticmethod
    def arena_size():
        return BLOCK + MAX_BLOCKS * BLOCK


def taken(base, pos, avail):
    """Did a device whose GET_VRING_BASE returned ``base`` take the entry at avail position ``pos``
    (the driver's avail index now being ``avail``)? Free-running u16 indices."""
    return 0 < ((base - pos) & 0xFFFF) <= ((avail - pos) & 0xFFFF)


def pattern(round_no, q, seq, nblocks):
    head = f"r{round_no} q{q} s{seq} ".encode()
    return (head * (BLOCK // len(head) + 1))[:BLOCK] * nblocks


class QueueIO:
    """Drives queue ``q`` of round ``rd`` (racefuzz.Round) until the round stops."""

    def __init__(self, rd, q, rnd, first_block, nblocks):
        self.rd, self.q, self.rnd = rd, q, rnd
        self.first_block, self.nblocks = first_block, nblocks
        s = rd.session
        self.vq = s.vqs[q]
        base = s.reserve(SLOTS * Slot.arena_size(), BLOCK)
        self.slots = [Slot(s.mem, base + i * Slot.arena_size()) for i in range(SLOTS)]
        self.seq = 0
        self.pending = []

    # one batch ---------------------------------------------------------------------------
    def _build(self):
        rd, rnd = self.rd, self.rnd
        per_req = 1 if self.vq.indirect else 3
        n = rnd.randint(1, max(1, min(SLOTS, self.vq.num // per_req)))
        used, batch = set(), []
        for slot in self.slots[:n]:
            kind = rnd.choices(("write", "read", "flush", "get_id"), (40, 40, 10, 10))[0]
            if kind in ("write", "read"):
                nb = rnd.randint(1, MAX_BLOCKS)
                start = self.first_block + rnd.randrange(self.nblocks - nb + 1)
                blocks = set(range(start, start + nb))
                if blocks & used:
                    kind = "flush"
                else:
                    used |= blocks
                    self.seq += 1
                    payload = pattern(rd.no, self.q, self.seq, nb) if kind == "write" else b""
                    slot.prepare(self.rd.session.mem, kind, start, nb, payload)
            if kind in ("flush", "get_id"):
                slot.prepare(self.rd.session.mem, kind)
            batch.append(slot)
        return batch

    def run(self):
        rd, s = self.rd, self.rd.session
        while not rd.stopping():
            batch = self._build()
            for slot in batch:
                slot.pos = self.vq.avail_idx
                slot.ro_gen = rd.ro_gen
                s.submit(self.q, slot, None)
            self.pending = list(batch)
            s.notify(self.q)
            rd.stats.add("batches")
            if self.rnd.random() < rd.args.reset_ratio:
                if not self._reset():
                    return
            if not self._wait():
                return

    def _wait(self):
        rd, s, q = self.rd, self.rd.session, self.q
        poll = select.poll()
        poll.register(s.call[q], select.POLLIN)
        poll.register(s.err[q], select.POLLIN)
        deadline = time.monotonic() + rd.args.timeout
        while self.pending:
            self._reap()
            if not self.pending:
                break
            self.vq.enable_cb()
            self._reap()
            if not self.pending:
                break
            if rd.closed:
                self._forget_pending()
                return False
            if time.monotonic() > deadline:
                rd.fail("timeout", f"queue {q}: {len(self.pending)} requests "
                        f"({', '.join(sl.kind for sl in self.pending[:6])}) not completed within "
                        f"{rd.args.timeout:.0f}s, no ring error (lost kick or hang)")
                return False
            for fd, _ev in poll.poll(50):
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    continue
                if fd == s.err[q] and not rd.closed:
                    rd.fail("ring-error", f"queue {q}: the device signalled a ring error on a "
                            f"valid ring")
                    return False
        return True

    def _reap(self):
        rd = self.rd
        try:
            done = rd.session.reap(self.q)
        except RuntimeError as e:        # a head that is not in flight
            rd.fail("bogus-used", f"queue {self.q}: {e}")
            self.pending = []
            return
        for slot in done:
            self.pending.remove(slot)
            self._check(slot)

    def _check(self, slot):
        rd, exp, mem = self.rd, self.rd.expected, self.rd.session.mem
        rd.stats.add(f"req_{slot.kind}")
        st, kind = slot.status, slot.kind
        ro_window = slot.ro_gen != rd.ro_gen or rd.readonly
        if st == _UNSET:
            rd.fail("no-status", f"queue {self.q}: {kind} completed without a status byte")
        elif kind == "write":
            if st == V.S_OK:
                for i in range(slot.nblocks):
                    exp.set(slot.block + i, slot.payload[i * BLOCK:(i + 1) * BLOCK])
            elif st == V.S_IOERR and ro_window:
                rd.stats.add("write_ioerr_readonly")
            else:
                self._forget(slot)
                rd.fail("status", f"queue {self.q}: write of block {slot.block} got status {st}")
        elif kind == "read":
            if st != V.S_OK or slot.used_len != slot.nblocks * BLOCK + 1:
                rd.fail("status", f"queue {self.q}: read of block {slot.block} got status {st}, "
                        f"used.len {slot.used_len}")
                return
            got = mem.read(slot.data, slot.nblocks * BLOCK)
            for i in range(slot.nblocks):
                want = exp.get(slot.block + i)
                if want is not None and got[i * BLOCK:(i + 1) * BLOCK] != want:
                    rd.fail("data", f"queue {self.q}: block {slot.block + i} reads "
                            f"{got[i * BLOCK:i * BLOCK + 24]!r}, last completed write was "
                            f"{want[:24]!r}")
                    exp.forget(slot.block + i)
                rd.stats.add("blocks_verified" if want is not None else "blocks_unknown")
        elif st != V.S_OK and not (st == V.S_IOERR and ro_window and kind == "flush"):
            rd.fail("status", f"queue {self.q}: {kind} got status {st}")
        elif kind == "get_id" and slot.used_len != ID_LEN + 1:
            rd.fail("status", f"queue {self.q}: GET_ID used.len {slot.used_len}, expected {ID_LEN + 1}")

    def _forget(self, slot):
        if slot.kind == "write":
            for i in range(slot.nblocks):
                self.rd.expected.forget(slot.block + i)

    def _forget_pending(self):
        """The device was closed with these in flight: their writes may or may not have happened."""
        for slot in self.pending:
            self._forget(slot)
        self.rd.stats.add("closed_in_flight", len(self.pending))
        self.pending = []

    # ring reset with requests in flight -----------------------------------------------------
    def _reset(self):
        rd, s, q, vq = self.rd, self.rd.session, self.q, self.vq
        with rd.ctl[q]:
            ok, base = rd.ioctl("get_vring_base", s.dev.get_vring_base, q)
            if not ok:
                self._forget_pending()
                return False
            self._reap()
            avail = vq.avail_idx
            if ((avail - base) & 0xFFFF) > vq.num:
                rd.fail("vring-base", f"queue {q}: GET_VRING_BASE returned {base}, the driver's "
                        f"avail index is {avail}")
            lost = [sl for sl in self.pending if taken(base, sl.pos, avail)]
            if lost:
                rd.fail("vring-base", f"queue {q}: {len(lost)} requests taken before "
                        f"GET_VRING_BASE ({base}) returned are not in the used ring")
                for sl in lost:
                    self._forget(sl)
            rd.stats.add("ring_resets")
            rd.stats.add("reset_dropped", len(self.pending) - len(lost))
            self.pending = []
            try:
                os.eventfd_read(s.err[q])
                if not rd.closed:
                    rd.fail("ring-error", f"queue {q}: ring error before a reset")
            except BlockingIOError:
                pass
            new = self.rnd.randrange(0x10000)
            vq.reset_state(new)
            vq.enable_cb()
            desc, used, avail_a = vq.hva_addrs()
            return (rd.ioctl("set_vring_num", s.dev.set_vring_num, q, vq.num)[0]
                    and rd.ioctl("set_vring_base", s.dev.set_vring_base, q, new)[0]
                    and rd.ioctl("set_vring_addr", s.dev.set_vring_addr, q, desc, used, avail_a)[0])
