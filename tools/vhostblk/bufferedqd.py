# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks that buffered I/O keeps the guest's queue depth (issue 10 item 13).

Buffered reads and writes are tried without blocking in the queue's worker; what would block
goes to the device's slow-op threads, and the worker serves the queue's other requests meanwhile.
Nothing here is timed: each check holds one request in the kernel until the test lets it go, so
a worker that did it itself would answer nothing else until then (and the check times out).

- uncached read (root, debugfs, dmsetup): the backing is a device-mapper linear device over a
  loop device, opened buffered. Its page cache holds blocks 0-16 only; the dm device is then
  suspended, so reading anything else waits in the kernel until the resume. On one queue: a read
  of blocks 16-17 (block 16 cached, 17 not), then reads of cached blocks. The cached reads are
  answered with the right data while the first one waits in a slow-op thread (debugfs
  slow_ops: one read/write handed over and running, the queue's inflight 1); after the resume
  it completes with all 8 KiB right: the cached half read without blocking is not answered
  short, the rest is read where it stopped;
- drain (same device): a read waiting in a slow-op thread holds close() until it completes;
- write to a frozen filesystem (root, debugfs, mkfs.ext4): a buffered write to a file on a
  frozen ext4 waits in a slow-op thread for the thaw while cached reads on its queue are
  answered; after the thaw it completes and its data is in the file.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

from . import virtio as V
from .blkops import read_data, read_req, write_req
from .devstats import DEBUGFS, debugfs_mounted, read_queue, stats_dir
from .driver import RingError, Session, WaitTimeout
from .slowops import FrozenExt4, read_slow

BLK_BITS = (1 << 24) - 1
BLOCK = 4096
SECT_PER_BLOCK = BLOCK // V.SECTOR
DM_BLOCKS = 2048                 # 8 MiB
CACHED = 17                      # blocks 0..16 in the page cache
CACHED_READS = 8


def block_data(i):
    """The pattern of block i: its number in every 8 bytes, so a misplaced block shows."""
    return (i.to_bytes(4, "little") + b"vblk").ljust(8, b"\0") * (BLOCK // 8)


class SuspendedDm:
    """A dm linear device over a loop device over a file; suspend() holds every read of it."""

    def __init__(self, workdir):
        self.img = os.path.join(workdir, "dm.img")
        self.name = f"vhostblk-selftest-{os.getpid()}"
        self.loop = None
        self.created = False
        self.suspended = False

    def _dmsetup(self, *args):
        return subprocess.run(["dmsetup", *args], check=True, capture_output=True, text=True).stdout

    def setup(self):
        with open(self.img, "wb") as f:
            f.truncate(DM_BLOCKS * BLOCK)
        for mod in ("loop", "dm_mod"):
            subprocess.run(["modprobe", "-q", mod], check=False, capture_output=True)
        self.loop = subprocess.run(["losetup", "-f", "--show", self.img], check=True,
                                   capture_output=True, text=True).stdout.strip()
        self._dmsetup("create", self.name, "--noudevsync",
                      "--table", f"0 {DM_BLOCKS * SECT_PER_BLOCK} linear {self.loop} 0")
        self.created = True
        node = self._dmsetup("info", "-c", "--noheadings", "-o", "blkdevname", self.name).strip()
        return f"/dev/{node}"

    @staticmethod
    def settle():
        """Let udev finish probing the device (blkid reads its first and last blocks into the cache)."""
        if shutil.which("udevadm"):
            subprocess.run(["udevadm", "settle", "--timeout=30"], check=False, capture_output=True)

    def suspend(self):
        self._dmsetup("suspend", "--noudevsync", self.name)
        self.suspended = True

    def resume(self):
        if self.suspended:
            self._dmsetup("resume", "--noudevsync", self.name)
            self.suspended = False

    def cleanup(self):
        self.resume()
        if self.created:
            subprocess.run(["dmsetup", "remove", "--noudevsync", self.name], check=False,
                           capture_output=True)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], check=False, capture_output=True)


def cache_only_first_blocks(fd):
    """Write every block's pattern, then leave exactly blocks 0..CACHED-1 in the page cache."""
    for i in range(DM_BLOCKS):
        os.pwrite(fd, block_data(i), i * BLOCK)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    # no readahead on this open file (the module reads through the same one)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    want = b"".join(block_data(i) for i in range(CACHED))
    got = os.pread(fd, CACHED * BLOCK, 0)
    if got != want:
        raise OSError(f"the dm device reads back {len(got)} bytes, not the pattern written")
    os.posix_fadvise(fd, CACHED * BLOCK, 0, os.POSIX_FADV_DONTNEED)


class BufferedQd:
    def __init__(self, lc):
        self.lc, self.rep = lc, lc.rep

    def run(self):
        rep = self.rep
        probe = self.lc.open_device()
        cls = type(probe)
        probe.close()
        names = ("[buffered] an uncached read waits in a slow-op thread while cached reads on "
                 "its queue are answered",
                 "[buffered] a write to a frozen filesystem waits in a slow-op thread while "
                 "reads on its queue are answered")
        why = None
        if not getattr(cls, "IN_KERNEL", False):
            why = "the fake device has no kernel threads"
        elif os.geteuid() != 0:
            why = f"suspending a device and freezing a filesystem need root (uid {os.getuid()})"
        elif not debugfs_mounted() or not os.access(DEBUGFS, os.R_OK | os.X_OK):
            why = f"debugfs not mounted or not readable on {DEBUGFS}"
        if why:
            for name in names:
                rep.skip(name, why)
            return
        self.uncached_read(names[0])
        self.frozen_write(names[1])

    def _session(self, fd):
        s = Session(self.lc.open_device, self.lc.mem, 1, self.lc.qsize, want=BLK_BITS,
                    backend=(fd, 0))
        try:
            s.start()
        except BaseException:
            s.close()
            raise
        return s

    def _wait_running(self, d, n):
        """Until n handed-over requests run (convergence, not timing); the last counters."""
        deadline = time.monotonic() + self.lc.timeout
        st = read_slow(d)
        while st and st["running"] < n and time.monotonic() < deadline:
            time.sleep(0.05)
            st = read_slow(d)
        return st

    def uncached_read(self, name):
        rep = self.rep
        missing = [t for t in ("dmsetup", "losetup") if not shutil.which(t)]
        if missing:
            rep.skip(name, f"needs {' '.join(missing)}")
            return
        work = tempfile.mkdtemp(prefix="vhostblk-bufqd-", dir="/var/tmp")
        dm = SuspendedDm(work)
        fd = None
        s = None
        try:
            try:
                node = dm.setup()
            except (subprocess.CalledProcessError, OSError) as e:
                err = getattr(e, "stderr", "") or ""
                rep.skip(name, f"cannot make a dm linear device over a loop device: {e}: {err.strip()[:200]}")
                return
            dm.settle()
            fd = os.open(node, os.O_RDWR | os.O_CLOEXEC)
            cache_only_first_blocks(fd)
            s = self._session(fd)
            self._held_read(s, dm, name)
            s = self._close_drains(s, dm, fd)
        except (OSError, RingError, WaitTimeout) as e:
            rep.check(name, False, str(e))
        finally:
            dm.resume()
            if s is not None:
                s.close()
            if fd is not None:
                os.close(fd)
            dm.cleanup()
            shutil.rmtree(work, ignore_errors=True)

    def _held_read(self, s, dm, name):
        rep = self.rep
        d = stats_dir(s.dev)
        dm.suspend()
        held = s.submit(0, read_req(s, (CACHED - 1) * SECT_PER_BLOCK, 2 * SECT_PER_BLOCK))
        cached = [s.submit(0, read_req(s, (i * 5 % (CACHED - 1)) * SECT_PER_BLOCK, SECT_PER_BLOCK))
                  for i in range(CACHED_READS)]
        s.kick_now(0)
        try:
            s.wait(cached, timeout=self.lc.timeout, queues=[0])
        except WaitTimeout as e:
            rep.check(name, False, f"{e}: the worker waits for the uncached read itself")
            return
        st = self._wait_running(d, 1)
        qst = read_queue(d, 0)
        early = s.reap(0)
        bad = [i for i, r in enumerate(cached)
               if r.status != V.S_OK or read_data(s, r) != block_data(i * 5 % (CACHED - 1))]
        rep.check(name, not bad and not early and held.status is None and st is not None
                  and st["running"] == 1 and st["rw"] >= 1 and qst["inflight"] == 1,
                  f"cached reads wrong: {bad}; the held read answered early: {bool(early)}; "
                  f"slow_ops {st}; queue0 inflight {qst.get('inflight')}")
        dm.resume()
        s.wait([held], timeout=self.lc.timeout, queues=[0])
        want = block_data(CACHED - 1) + block_data(CACHED)
        rep.check("[buffered] a partly cached read completes whole after the resume "
                  "(the cached half is not answered short)",
                  held.status == V.S_OK and read_data(s, held) == want
                  and held.used_len == 2 * BLOCK + 1,
                  f"status {held.status}, used.len {held.used_len}, "
                  f"data right: {read_data(s, held) == want}")

    def _close_drains(self, s, dm, fd):
        """Close with a read held in a slow-op thread; None once close() was called on it."""
        rep = self.rep
        name = "[buffered] close waits for a read held in a slow-op thread"
        d = stats_dir(s.dev)
        dm.settle()     # the resume made udev probe the device again
        os.posix_fadvise(fd, CACHED * BLOCK, 0, os.POSIX_FADV_DONTNEED)
        dm.suspend()
        held = s.submit(0, read_req(s, (DM_BLOCKS - 1) * SECT_PER_BLOCK, SECT_PER_BLOCK))
        s.kick_now(0)
        st = self._wait_running(d, 1)
        if not st or st["running"] != 1:
            rep.check(name, False, f"the read did not go to a slow-op thread: slow_ops {st}")
            return s
        closer = threading.Thread(target=s.close, daemon=True)
        closer.start()
        closer.join(0.5)
        waited = closer.is_alive()
        dm.resume()
        closer.join(self.lc.timeout)
        rep.check(name, waited and not closer.is_alive() and held.status is None,
                  f"close still waiting before the resume: {waited}; returned after it: "
                  f"{not closer.is_alive()}")
        return None     # closed, or still closing in the thread: not to be closed again

    def frozen_write(self, name):
        rep = self.rep
        missing = [t for t in ("mkfs.ext4", "losetup", "mount", "umount") if not shutil.which(t)]
        if missing:
            rep.skip(name, f"needs {' '.join(missing)}")
            return
        work = tempfile.mkdtemp(prefix="vhostblk-bufqd-", dir="/var/tmp")
        fs = FrozenExt4(work)
        fd = None
        s = None
        try:
            try:
                mnt = fs.setup()
            except (subprocess.CalledProcessError, OSError) as e:
                err = getattr(e, "stderr", "") or ""
                rep.skip(name, f"cannot make an ext4 filesystem on a loop device: {e}: {err.strip()[:200]}")
                return
            fd = os.open(os.path.join(mnt, "a.img"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            for i in range(CACHED):
                os.pwrite(fd, block_data(i), i * BLOCK)
            os.ftruncate(fd, 4 << 20)
            s = self._session(fd)
            self._held_write(s, fs, fd, name)
        except (OSError, RingError, WaitTimeout) as e:
            rep.check(name, False, str(e))
        finally:
            fs.thaw()
            if s is not None:
                s.close()
            if fd is not None:
                os.close(fd)
            fs.cleanup()
            shutil.rmtree(work, ignore_errors=True)

    def _held_write(self, s, fs, fd, name):
        rep = self.rep
        d = stats_dir(s.dev)
        target = 100
        fs.freeze()
        held = s.submit(0, write_req(s, target * SECT_PER_BLOCK, block_data(target)))
        reads = [s.submit(0, read_req(s, i * SECT_PER_BLOCK, SECT_PER_BLOCK)) for i in range(CACHED_READS)]
        s.kick_now(0)
        try:
            s.wait(reads, timeout=self.lc.timeout, queues=[0])
        except WaitTimeout as e:
            rep.check(name, False, f"{e}: the worker waits for the thaw itself")
            return
        st = self._wait_running(d, 1)
        early = s.reap(0)
        bad = [i for i, r in enumerate(reads) if r.status != V.S_OK or read_data(s, r) != block_data(i)]
        rep.check(name, not bad and not early and held.status is None and st is not None
                  and st["running"] == 1 and st["rw"] >= 1,
                  f"reads wrong: {bad}; the write answered before the thaw: {bool(early)}; slow_ops {st}")
        fs.thaw()
        s.wait([held], timeout=self.lc.timeout, queues=[0])
        got = os.pread(fd, BLOCK, target * BLOCK)
        rep.check("[buffered] after the thaw the held write completes and its data is in the file",
                  held.status == V.S_OK and got == block_data(target),
                  f"status {held.status}, data in the file right: {got == block_data(target)}")


def run(lc):
    BufferedQd(lc).run()
