# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of how the module reaches the backend: as the VMM would.

- SET_BACKEND on a regular file of /proc or /sys (kernel interfaces, not storage): EINVAL;
- guest writes and reads go through the VFS hooks of write(2)/read(2): an inotify watch on
  the backing file sees IN_MODIFY and IN_ACCESS;
- guest writes run with the credentials of whoever opened the backend: a set-user-ID file
  opened by an unprivileged user loses the bit on the first write, as with write(2)
  (a kernel thread's own credentials would keep it); needs root, real module only;
- DISCARD on a filesystem that cannot punch holes (``--nopunch-file`` on e.g. vfat): answered
  UNSUPP, and no longer offered (GET_INFO flags, GET_FEATURES).
"""

import ctypes
import errno
import os
import select
import stat
import struct

from . import virtio as V
from .blkops import dwz_req, read_req, write_req
from .driver import RingError, WaitTimeout

PROC_FILES = ("/proc/version", "/proc/cpuinfo")
SYS_FILES = ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/power/state",
             "/sys/kernel/uevent_seqnum")
IN_ACCESS, IN_MODIFY = 0x1, 0x2
NOBODY = 65534


def run(lc, nopunch_file=None):
    for name, check in (("pseudo filesystems refused", _pseudo_fs),
                        ("VFS hooks (fsnotify)", _fsnotify),
                        ("opener credentials", _opener_creds)):
        try:
            check(lc)
        except (OSError, RingError, WaitTimeout) as e:
            lc.rep.check(f"[access] {name}", False, str(e))
    if nopunch_file:
        try:
            _nopunch(lc, nopunch_file)
        except (OSError, RingError, WaitTimeout) as e:
            lc.rep.check("[access] DISCARD where holes cannot be punched", False, str(e))


def _pseudo_fs(lc):
    for kind, paths in (("/proc", PROC_FILES), ("/sys", SYS_FILES)):
        path = next((p for p in paths if os.path.isfile(p)), None)
        name = f"[access] SET_BACKEND on a {kind} file refused (EINVAL)"
        if path is None:
            lc.rep.skip(name, f"none of {paths}")
            continue
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        dev = lc.open_device()
        try:
            dev.set_owner()
            dev.set_backend(fd, lc.abi.VHOST_BLK_BACKEND_F_READONLY)
            lc.rep.check(name, False, f"{path} accepted")
        except OSError as e:
            lc.rep.check(name, e.errno == errno.EINVAL, f"{path}: {e}")
        finally:
            dev.close()
            os.close(fd)


def _inotify(path):
    libc = ctypes.CDLL(None, use_errno=True)
    ifd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if ifd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    if libc.inotify_add_watch(ifd, os.fsencode(path), IN_ACCESS | IN_MODIFY) < 0:
        err = ctypes.get_errno()
        os.close(ifd)
        raise OSError(err, f"inotify_add_watch {path}")
    return ifd


def _events(ifd):
    mask = 0
    while select.select([ifd], [], [], 0.5)[0]:
        try:
            buf = os.read(ifd, 65536)
        except BlockingIOError:
            break
        pos = 0
        while pos + 16 <= len(buf):
            _wd, m, _cookie, n = struct.unpack_from("iIII", buf, pos)
            mask |= m
            pos += 16 + n
    return mask


def _fsnotify(lc):
    s = lc.session()
    ifd = _inotify(lc.path)
    try:
        s.run(0, [write_req(s, 64, lc.rnd.randbytes(4096))], timeout=lc.timeout)
        got = _events(ifd)
        lc.rep.check("[access] guest write seen by inotify (IN_MODIFY)", got & IN_MODIFY,
                     f"event mask {got:#x}")
        s.run(0, [read_req(s, 64, 8)], timeout=lc.timeout)
        got = _events(ifd)
        lc.rep.check("[access] guest read seen by inotify (IN_ACCESS)", got & IN_ACCESS,
                     f"event mask {got:#x}")
    finally:
        os.close(ifd)
        s.close()


def _scratch_dir(lc):
    if not lc.isblk:
        return os.path.dirname(os.path.abspath(lc.path))
    return "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"


def _opener_creds(lc):
    name = "[access] write with the opener's credentials clears set-user-ID"
    dev = lc.open_device()
    in_kernel = getattr(dev, "IN_KERNEL", False)
    dev.close()
    if not in_kernel:
        lc.rep.skip(name, "the fake device does its I/O as this process")
        return
    if os.geteuid() != 0:
        lc.rep.skip(name, "needs root (opens the file as nobody)")
        return
    d = _scratch_dir(lc)
    if not os.stat(d).st_mode & stat.S_IWOTH:
        lc.rep.skip(name, f"{d} is not world-writable")
        return
    path = os.path.join(d, f"vhostblk-suid-{os.getpid()}.img")
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.ftruncate(fd, 1 << 20)
        os.fchmod(fd, 0o4600)
    finally:
        os.seteuid(0)
        os.setegid(0)
    try:
        s = lc.session_on(fd)
        try:
            w = s.run(0, [write_req(s, 0, b"\x42" * 4096)], timeout=lc.timeout)[0]
        finally:
            s.close()
        mode = os.fstat(fd).st_mode
        lc.rep.check(name, w.status == V.S_OK and not mode & stat.S_ISUID,
                     f"status {w.status}, mode {mode & 0o7777:o} after the write (was 4600)")
    finally:
        os.close(fd)
        os.unlink(path)


def _nopunch(lc, path):
    a, rep = lc.abi, lc.rep
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size < (1 << 20):
            os.ftruncate(fd, 1 << 20)
        s = lc.session_on(fd)
        try:
            if not s.dev.get_info()["flags"] & a.VHOST_BLK_INFO_F_DISCARD:
                rep.check("[access] DISCARD not offered where holes cannot be punched", True,
                          "not offered at attach")
                return
            r = dwz_req(s, V.T_DISCARD, [(8, 8)])
            s.run(0, [r], timeout=lc.timeout)
            info = s.dev.get_info()
            feats = s.dev.get_features()
            rep.check("[access] DISCARD on a filesystem without hole punching -> UNSUPP",
                      r.status == V.S_UNSUPP, f"status {r.status}")
            rep.check("[access] ... then DISCARD no longer offered",
                      not info["flags"] & a.VHOST_BLK_INFO_F_DISCARD
                      and not feats & V.bit(V.BLK_F_DISCARD)
                      and info["max_discard_sectors"] == 0,
                      f"flags {info['flags']:#x}, features {feats:#x}")
        finally:
            s.close()
    finally:
        os.close(fd)
