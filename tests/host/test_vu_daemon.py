# SPDX-License-Identifier: GPL-2.0-or-later
"""vhost-blk-user (tools/vhostblk/vu_*.py) against a vhost-user front end, without a VM.

The daemon runs as its own process with the in-process model of /dev/vhost-blk (``--fake``):
guest memory is a memfd that the test maps and the daemon maps again, so ring addresses, memory
translation and eventfd passing are exercised across two address spaces, as with QEMU. The real
module behind the same daemon, with Debian's QEMU as the front end, is tests/vm/test_vhost_user.py.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from vhostblk import blkops  # noqa: E402
from vhostblk import virtio as V  # noqa: E402
from vhostblk.driver import Session  # noqa: E402
from vhostblk.vu_config import CONFIG, FIELDS, config_values  # noqa: E402
from vhostblk.vu_front import VhostUserFront  # noqa: E402
from vhostblk.vu_proto import HEADER, MEM_HEADER, MEM_REGION, U64, Message, Req, send_message  # noqa: E402

SIZE = 8 << 20


class Daemon:
    def __init__(self, tmp_path, *extra, size=SIZE):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.sock = str(tmp_path / "d.sock")
        self.backing = tmp_path / "disk.raw"
        if not self.backing.exists():
            self.backing.write_bytes(bytes(size))
        self.log = tmp_path / "daemon.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vhostblk.vu_daemon", "--fake", "--cache", "writeback", "--socket", self.sock,
             "--backing", str(self.backing), *extra],
            cwd=REPO / "tools", stderr=open(self.log, "w"), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"daemon did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def text(self):
        return self.log.read_text()

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(30)  # a loaded CI host can take its time
        return rc


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path)
    yield d
    if d.proc.poll() is None:
        d.stop()


def pattern(n, seed):
    return bytes((i * 131 + seed * 7 + (i >> 9)) & 0xFF for i in range(n))


def test_guest_writes_land_on_the_backing_through_the_daemon(daemon):
    with Session(lambda: VhostUserFront(daemon.sock), mem_size=8 << 20, queues=2,
                 want=V.bit(V.F_EVENT_IDX) | V.bit(V.BLK_F_FLUSH) | V.bit(V.BLK_F_MQ)) as s:
        s.start()
        reqs = []
        for q in range(2):
            data = pattern(64 << 10, q)
            reqs.append((q, data, s.submit(q, blkops.write_req(s, q * 1024, data, nsegs=3))))
            s.notify(q)
        for q, _data, req in reqs:
            s.wait([req], timeout=10, queues=[q])
            assert req.status == V.S_OK
        s.reset_scratch()
        for q, data, _req in reqs:
            rd = s.run(q, [s.submit(q, blkops.read_req(s, q * 1024, len(data) // 512, nsegs=2))])[0]
            assert rd.status == V.S_OK
            assert blkops.read_data(s, rd) == data
    on_disk = daemon.backing.read_bytes()
    for q, data, _req in reqs:
        assert on_disk[q * 1024 * 512:q * 1024 * 512 + len(data)] == data
    assert "front end disconnected" in daemon.text()


def test_config_space_comes_from_the_device(daemon):
    with VhostUserFront(daemon.sock) as f:
        cfg = dict(zip(FIELDS, CONFIG.unpack(f.get_config(0, CONFIG.size))))
        assert cfg["capacity"] == SIZE // 512
        assert cfg["blk_size"] == 512 and cfg["seg_max"] > 0 and cfg["num_queues"] == f.max_queues
        assert f.get_features() & V.bit(V.BLK_F_SIZE_MAX)
        # a window into the middle, and bytes past the known fields read as zero
        assert f.get_config(8, 8) == CONFIG.pack(*(cfg[k] for k in FIELDS))[8:16]
        assert f.get_config(200, 16) == bytes(16)
        assert 0 < firmware_blocks_per_request(cfg) and cfg["size_max"] * cfg["seg_max"] <= 32 << 20


def firmware_blocks_per_request(cfg):
    """What SeaBIOS 1.16 makes of the config: (u16)((u32)(size_max * seg_max) / blk_size) blocks per
    request; 0 makes it loop forever on empty requests while the guest kernel boots."""
    return ((cfg["size_max"] * cfg["seg_max"]) & 0xFFFFFFFF) // cfg["blk_size"] & 0xFFFF


@pytest.mark.parametrize("max_sectors", [0, 8, 2048, 1 << 21, 1 << 31])
@pytest.mark.parametrize("seg_max", [1, 126, 1024, 32768])
@pytest.mark.parametrize("blk", [512, 4096])
def test_request_limits_fit_the_module_and_the_firmware(max_sectors, seg_max, blk):
    """Every module limit gives a config whose full request the module accepts and SeaBIOS can count
    (the module's 1 GiB with seg_max 126 once gave size_max 1 GiB: SeaBIOS hung the guest's boot)."""
    info = {"capacity": 1 << 20, "seg_max": seg_max, "blk_size": blk, "max_sectors": max_sectors}
    cfg = config_values(info, 1)
    assert 1 <= cfg["seg_max"] <= seg_max
    assert cfg["size_max"] >= 4096 and cfg["size_max"] & (cfg["size_max"] - 1) == 0
    if max_sectors * 512 >= 4096 * cfg["seg_max"]:
        assert cfg["size_max"] * cfg["seg_max"] <= max_sectors * 512
    assert firmware_blocks_per_request(cfg) > 0


def test_restart_of_the_front_end_gets_a_fresh_device(daemon):
    """A reconnecting QEMU starts over; data written in the first session is still there."""
    data = pattern(16 << 10, 5)
    with Session(lambda: VhostUserFront(daemon.sock), mem_size=4 << 20) as s:
        s.start()
        assert s.run(0, [s.submit(0, blkops.write_req(s, 64, data))])[0].status == V.S_OK
    with Session(lambda: VhostUserFront(daemon.sock), mem_size=4 << 20) as s:
        s.start()
        rd = s.run(0, [s.submit(0, blkops.read_req(s, 64, len(data) // 512))])[0]
        assert rd.status == V.S_OK and blkops.read_data(s, rd) == data
    assert "session 2" in daemon.text()


def _raw_client(path):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(path)
    return c


def _dropped(c):
    """True when the daemon closed the connection."""
    try:
        return c.recv(1) == b""
    except ConnectionResetError:
        return True


def _still_serves(daemon):
    with VhostUserFront(daemon.sock) as f:
        return f.get_features() & V.bit(V.F_VERSION_1)


@pytest.mark.parametrize("case", ["unknown-request", "bad-version", "huge-payload", "short-payload",
                                  "region-beyond-fd", "regions-without-fds", "vring-out-of-range",
                                  "addr-outside-memory"])
def test_bad_input_drops_that_connection_only(daemon, case):
    c = _raw_client(daemon.sock)
    if case == "unknown-request":
        send_message(c, Message(999))
    elif case == "bad-version":
        c.sendall(HEADER.pack(Req.GET_FEATURES, 0x2, 0))
    elif case == "huge-payload":
        c.sendall(HEADER.pack(Req.SET_FEATURES, 0x1, 1 << 20))
    elif case == "short-payload":
        send_message(c, Message(Req.SET_FEATURES, b"\1\2"))
    elif case == "region-beyond-fd":
        fd = os.memfd_create("small")
        os.ftruncate(fd, 4096)
        send_message(c, Message(Req.SET_MEM_TABLE, MEM_HEADER.pack(1, 0) + MEM_REGION.pack(0, 1 << 20, 1 << 30, 0),
                                [fd]))
        os.close(fd)
    elif case == "regions-without-fds":
        send_message(c, Message(Req.SET_MEM_TABLE, MEM_HEADER.pack(2, 0) + MEM_REGION.pack(0, 4096, 0, 0) * 2))
    elif case == "vring-out-of-range":
        send_message(c, Message(Req.SET_VRING_NUM, (200).to_bytes(4, "little") + (128).to_bytes(4, "little")))
    elif case == "addr-outside-memory":
        fd = os.memfd_create("ram")
        os.ftruncate(fd, 1 << 20)
        send_message(c, Message(Req.SET_MEM_TABLE, MEM_HEADER.pack(1, 0) + MEM_REGION.pack(0, 1 << 20, 1 << 40, 0),
                                [fd]))
        os.close(fd)
        send_message(c, Message(Req.SET_VRING_ADDR, (0).to_bytes(8, "little") + (1 << 50).to_bytes(8, "little") * 4))
    assert _dropped(c), case
    c.close()
    assert daemon.proc.poll() is None, daemon.text()
    assert _still_serves(daemon)
    assert "dropping the front end" in daemon.text()


def test_second_client_is_refused_and_the_first_keeps_working(daemon):
    with VhostUserFront(daemon.sock) as first:
        second = _raw_client(daemon.sock)
        assert _dropped(second)
        second.close()
        send_message(first.sock, Message(Req.GET_QUEUE_NUM))
        assert first._reply(Req.GET_QUEUE_NUM).u64() >= 1
    assert "refused a second client" in daemon.text()


def test_reply_ack_reports_a_kernel_refusal(daemon):
    """SET_VRING_NUM with a size the device refuses: REPLY_ACK says so, the connection stays."""
    with VhostUserFront(daemon.sock) as f:
        with pytest.raises(OSError):
            f.set_vring_num(0, 3)         # not a power of two
        f.set_vring_num(0, 128)


def test_features_not_offered_are_refused(daemon):
    with VhostUserFront(daemon.sock) as f:
        send_message(f.sock, Message(Req.SET_FEATURES, U64.pack(1 << 60)))
        assert _dropped(f.sock)


def test_ring_stop_resume_and_dirty_logging_are_logged(daemon):
    """Live migration's trace in the log: dirty logging switched on and off (SET_FEATURES with and without
    LOG_ALL), where a ring stopped (GET_VRING_BASE, after the drain) and where it starts again."""
    with Session(lambda: VhostUserFront(daemon.sock), mem_size=4 << 20) as s:
        s.start()
        assert s.run(0, [s.submit(0, blkops.write_req(s, 8, pattern(4096, 3)))])[0].status == V.S_OK
        s.dev.set_features(s.features | V.bit(V.VHOST_F_LOG_ALL))
        s.dev.set_features(s.features)
        stopped = s.dev.get_vring_base(0)
        s.dev.set_vring_base(0, stopped)
    log = daemon.text()
    assert stopped >= 1
    assert "dirty logging on" in log and "dirty logging off" in log, log
    assert f"vring 0 stopped at avail index {stopped} (0 request(s) were in flight" in log, log
    assert "vring 0 starts at avail index 0" in log and f"vring 0 starts at avail index {stopped}" in log, log


def test_a_missing_device_node_is_named_and_the_daemon_stays_up(tmp_path):
    """Without the module (no /dev/vhost-blk) each client is dropped with a message that says so."""
    backing = tmp_path / "disk.raw"
    backing.write_bytes(bytes(SIZE))
    sock, log = str(tmp_path / "d.sock"), tmp_path / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "vhostblk.vu_daemon", "--cache", "writeback", "--socket", sock,
                             "--backing", str(backing), "--device", str(tmp_path / "vhost-blk")],
                            cwd=REPO / "tools", stderr=open(log, "w"), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        c = _raw_client(sock)
        assert _dropped(c)
        c.close()
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"{tmp_path / 'vhost-blk'}'" in log.read_text() and "is the vhost_blk module loaded?" in log.read_text()


def test_backing_is_locked_against_a_second_daemon(daemon, tmp_path):
    other = subprocess.run([sys.executable, "-m", "vhostblk.vu_daemon", "--fake", "--cache", "writeback",
                            "--socket", str(tmp_path / "other.sock"), "--backing", str(daemon.backing)],
                           cwd=REPO / "tools", capture_output=True, text=True, timeout=30, check=False)
    assert other.returncode == 2 and "locked by another vhost-blk-user" in other.stderr


@pytest.mark.parametrize("args,message", [
    (["--serial", "x" * 21], "at most 20 ASCII characters"),
    (["--queues", "0"], "--queues 0"),
    (["--socket-group", "no-such-group-here"], "no such group"),
])
def test_bad_options_fail_before_listening(tmp_path, args, message):
    (tmp_path / "b.raw").write_bytes(bytes(4096))
    res = subprocess.run([sys.executable, "-m", "vhostblk.vu_daemon", "--fake", "--cache", "writeback",
                          "--socket", str(tmp_path / "s.sock"), "--backing", str(tmp_path / "b.raw"), *args],
                         cwd=REPO / "tools", capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (tmp_path / "s.sock").exists()


def test_sigterm_removes_the_socket(daemon):
    assert daemon.stop() == 0
    assert not os.path.exists(daemon.sock)
    assert "stopped after" in daemon.text()


def test_dirty_log_base_is_mapped_and_acknowledged(daemon):
    """LOG_SHMFD: SET_LOG_BASE carries a memfd; the back end maps it, gives the device its address and
    answers (QEMU waits for that reply); a log larger than its fd drops the connection."""
    with VhostUserFront(daemon.sock) as f:
        fd = os.memfd_create("log")
        os.ftruncate(fd, 64 << 10)
        f.set_log_base_fd(fd, 64 << 10)
        f.set_vring_num(0, 128)                 # the connection is still good
        with pytest.raises((ConnectionError, OSError)):
            f.set_log_base_fd(fd, 1 << 20)
            f.set_vring_num(0, 128)
        os.close(fd)
    assert "SET_LOG_BASE: needs bytes up to" in daemon.text()


def test_a_client_stalling_mid_message_is_dropped(daemon):
    c = _raw_client(daemon.sock)
    c.sendall(HEADER.pack(Req.SET_FEATURES, 0x1, 8) + b"\1\2")      # 2 of 8 payload bytes, then nothing
    c.settimeout(30)
    assert _dropped(c)
    c.close()
    assert _still_serves(daemon)
    assert "dropping the front end" in daemon.text()


def test_the_socket_appears_only_when_listening(tmp_path):
    """Clients (QEMU, systemd ordering) may connect as soon as the path exists."""
    for attempt in range(5):
        d = Daemon(tmp_path / str(attempt))
        try:
            with VhostUserFront(d.sock) as f:      # right after the path appeared: no ECONNREFUSED
                assert f.max_queues >= 1
        finally:
            d.stop()


def test_the_device_is_released_before_the_front_end_sees_the_socket_close():
    """QEMU resumes the next back end at the used index it reads once the socket closes: the
    kernel device (whose release finishes and publishes the requests in flight) must be gone first."""
    from vhostblk import vu_daemon

    order = []

    class Recorder:
        def __init__(self, what):
            self.what = what

        def close(self):
            order.append(self.what)

        def fileno(self):
            return wake_r  # any readable fd the selector accepts

    wake_r, wake_w = os.pipe()
    try:
        daemon = vu_daemon.Daemon.__new__(vu_daemon.Daemon)
        daemon.sel = vu_daemon.selectors.DefaultSelector()
        daemon.client, daemon.session = Recorder("socket"), Recorder("device")
        daemon.sel.register(daemon.client, vu_daemon.selectors.EVENT_READ, "client")
        daemon._drop("test")
        assert order == ["device", "socket"]
        assert daemon.client is None and daemon.session is None
    finally:
        os.close(wake_r)
        os.close(wake_w)
