# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of the dirty log (VHOST_F_LOG_ALL, live migration).

- the bitmap must cover the memory table whenever logging is on: SET_FEATURES adding LOG_ALL,
  or SET_MEM_TABLE with it acked, fail with EFAULT when it does not (as vhost does), instead
  of breaking the queue at the first logged write;
- a read that fails after writing part of the guest's buffers (the backing file shrank, the
  read comes back short: IOERR) still marks the data pages dirty;
- the used ring's logging is switched on and off (SET_VRING_ADDR with the same rings) while a
  request is in flight, as QEMU does when a migration starts under I/O (it aborts the VM when that
  fails); moving a ring then is still refused (EBUSY). The request is held in flight by a DISCARD
  on a frozen ext4 (root only).
"""

import ctypes
import errno
import os
import time

from . import virtio as V
from .addrspace import PAGE, user_top
from .blkops import dwz_req, read_req
from .driver import RingError, WaitTimeout
from .lifecycle import BLK_BITS
from .scratchdev import Unavailable, frozen_ext4, release_then_close, unmet

VRING_F_LOG = V.bit(V.VHOST_VRING_F_LOG)


def run(lc):
    for name, check in (("coverage re-checked", _coverage), ("failed read logged", _failed_read),
                        ("logging switched in flight", _switch_in_flight)):
        try:
            check(lc)
        except OSError as e:
            lc.rep.check(f"[dirtylog] {name}", False, str(e))


def _expect_efault(lc, name, call):
    try:
        call()
        lc.rep.check(name, False, "accepted")
    except OSError as e:
        lc.rep.check(name, e.errno == errno.EFAULT, str(e))


def _coverage(lc):
    base = V.bit(V.F_VERSION_1)
    small = [(0, PAGE, 0x10000)]
    high = [(1 << 40, PAGE, 0x10000)]       # needs 32 MiB of bitmap
    log = user_top() - PAGE                 # room for the bits of low memory only
    dev = lc.open_device()
    try:
        dev.set_owner()
        dev.set_features(base)
        dev.set_log_base(log)
        dev.set_mem_table(high)             # not logging yet: allowed
        _expect_efault(lc, "[dirtylog] SET_FEATURES +LOG_ALL with an uncovered memory table -> EFAULT",
                       lambda: dev.set_features(base | V.bit(V.VHOST_F_LOG_ALL)))
        dev.set_mem_table(small)
        dev.set_features(base | V.bit(V.VHOST_F_LOG_ALL))
        _expect_efault(lc, "[dirtylog] SET_MEM_TABLE beyond the log while logging -> EFAULT",
                       lambda: dev.set_mem_table(high))
    finally:
        dev.close()


def _failed_read(lc):
    name = "[dirtylog] pages of a short (failed) read are logged"
    d = os.path.dirname(os.path.abspath(lc.path)) if not lc.isblk else "/dev/shm"
    path = os.path.join(d, f"vhostblk-dirtylog-{os.getpid()}.img")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, 1 << 20)
        os.pwrite(fd, b"\x5a" * (1 << 20), 0)
        s = lc.session_on(fd, want=BLK_BITS | V.bit(V.VHOST_F_LOG_ALL))
        try:
            if not s.features & V.bit(V.VHOST_F_LOG_ALL):
                lc.rep.skip(name, "VHOST_F_LOG_ALL not offered")
                return
            nbytes = (s.mem.size // PAGE + 7) // 8
            bitmap = ctypes.create_string_buffer(nbytes)
            s.dev.set_log_base(ctypes.addressof(bitmap))
            os.ftruncate(fd, (1 << 20) - PAGE)   # capacity was sampled at attach: reads come back short
            r = read_req(s, ((1 << 20) - 2 * PAGE) // V.SECTOR, 2 * PAGE // V.SECTOR)
            s.run(0, [r], timeout=lc.timeout)
            bits = bitmap.raw
            pages = {p for g, n in r.segs for p in range(g // PAGE, (g + n - 1) // PAGE + 1)}
            unlogged = sorted(p for p in pages if not bits[p // 8] >> (p % 8) & 1)
            status_logged = bool(bits[r.status_gpa // PAGE // 8] >> (r.status_gpa // PAGE % 8) & 1)
            lc.rep.check(name, r.status == V.S_IOERR and not unlogged and status_logged,
                         f"status {r.status} (want IOERR), data pages {sorted(pages)} "
                         f"unlogged {unlogged}, status page logged {status_logged}")
            s.dev.set_log_base(0)
        finally:
            s.close()
    finally:
        os.close(fd)
        os.unlink(path)


def _switch_in_flight(lc):
    name = "[dirtylog] used ring logging switched on, off, on with a request in flight"
    why = unmet(lc, "the fake device models no ring ioctls against requests in flight", root="freezing a filesystem")
    if why:
        lc.rep.skip(name, why)
        return
    try:
        with frozen_ext4("vhostblk-dirtylog-") as fs:
            _switch_on_frozen(lc, fs, name)
    except Unavailable as e:
        lc.rep.skip(name, str(e))


def _switch_on_frozen(lc, fs, name):
    fd = s = None
    try:
        fd = os.open(os.path.join(fs.mnt, "d.img"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.ftruncate(fd, 1 << 20)
        s = lc.session_on(fd, want=BLK_BITS | V.bit(V.VHOST_F_LOG_ALL))
        if not s.features & V.bit(V.VHOST_F_LOG_ALL) or not s.features & V.bit(V.BLK_F_DISCARD):
            lc.rep.check(name, False, f"LOG_ALL and DISCARD not both negotiated on ext4: "
                                      f"{' '.join(V.feature_names(s.features))}")
            return
        bitmap = ctypes.create_string_buffer((s.mem.size // PAGE + 7) // 8)
        s.dev.set_log_base(ctypes.addressof(bitmap))
        fs.freeze()
        r = s.submit(0, dwz_req(s, V.T_DISCARD, [(0, 8)]))
        s.kick_now(0)
        deadline = time.monotonic() + lc.timeout
        while s.dev.get_info()["inflight"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        vq = s.vqs[0]
        desc, used, avail = vq.hva_addrs()
        switched = []
        for flags in (VRING_F_LOG, 0, VRING_F_LOG):
            try:
                s.dev.set_vring_addr(0, desc, used, avail, flags=flags, log=vq.used)
                switched.append("ok")
            except OSError as e:
                switched.append(errno.errorcode.get(e.errno, str(e.errno)))
        try:
            s.dev.set_vring_addr(0, desc + 16 * vq.num, used, avail, flags=VRING_F_LOG, log=vq.used)
            moved = "accepted"
        except OSError as e:
            moved = errno.errorcode.get(e.errno, str(e.errno))
        inflight = s.dev.get_info()["inflight"]
        fs.thaw()
        s.wait([r], timeout=lc.timeout)
        page = vq.used // PAGE
        used_logged = bool(bitmap.raw[page // 8] >> (page % 8) & 1)
        lc.rep.check(name, inflight >= 1 and switched == ["ok"] * 3 and moved == "EBUSY" and r.status == V.S_OK
                     and used_logged,
                     f"in flight {inflight}; log on/off/on: {switched}; moving the descriptor table: {moved} "
                     f"(want EBUSY); DISCARD status {r.status}; used ring page logged {used_logged}")
        s.dev.set_log_base(0)
    except (OSError, RingError, WaitTimeout) as e:
        lc.rep.check(name, False, str(e))
    finally:
        release_then_close(fs, [s], [fd])
