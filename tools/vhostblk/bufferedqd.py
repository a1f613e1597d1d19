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
import threading
import time

from . import virtio as V
from .blkops import read_data, read_req, write_req
from .devstats import read_queue, stats_dir
from .driver import RingError, Session, WaitTimeout
from .scratchdev import Unavailable, frozen_ext4, release_then_close, suspended_dm, unmet
from .slowops import read_slow

BLK_BITS = (1 << 24) - 1
BLOCK = 4096
SECT_PER_BLOCK = BLOCK // V.SECTOR
DM_BLOCKS = 2048                 # 8 MiB
CACHED = 17                      # blocks 0..16 in the page cache
CACHED_READS = 8


def block_data(i):
    """The pattern of block i: its number in every 8 bytes, so a misplaced block shows."""
    return (i.to_bytes(4, "little") + b"vblk").ljust(8, b"\0") * (BLOCK // 8)


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
        names = ("[buffered] an uncached read waits in a slow-op thread while cached reads on "
                 "its queue are answered",
                 "[buffered] a write to a frozen filesystem waits in a slow-op thread while "
                 "reads on its queue are answered")
        why = unmet(self.lc, "the fake device has no kernel threads",
                    root="suspending a device and freezing a filesystem", debugfs=True)
        if why:
            for name in names:
                rep.skip(name, why)
            return
        self._on(names[0], suspended_dm("vhostblk-bufqd-", DM_BLOCKS * BLOCK), self._dm_backing, self.uncached_read)
        self._on(names[1], frozen_ext4("vhostblk-bufqd-"), self._fs_backing, self.frozen_write)

    def _on(self, name, scratch, open_backing, check):
        """check(session, scratch device, backing fd, name) on a session over a backing that
        open_backing(scratch device) opens; check returns the session to close (None: closed)."""
        try:
            with scratch as dev:
                fd = s = None
                try:
                    fd = open_backing(dev)
                    s = self._session(fd)
                    s = check(s, dev, fd, name)
                except (OSError, RingError, WaitTimeout) as e:
                    self.rep.check(name, False, str(e))
                finally:
                    release_then_close(dev, [s], [fd])
        except Unavailable as e:
            self.rep.skip(name, str(e))

    @staticmethod
    def _dm_backing(dm):
        fd = os.open(dm.node, os.O_RDWR | os.O_CLOEXEC)
        try:
            cache_only_first_blocks(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _fs_backing(fs):
        fd = os.open(os.path.join(fs.mnt, "a.img"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for i in range(CACHED):
            os.pwrite(fd, block_data(i), i * BLOCK)
        os.ftruncate(fd, 4 << 20)
        return fd

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

    def uncached_read(self, s, dm, fd, name):
        self._held_read(s, dm, name)
        return self._close_drains(s, dm, fd)

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

    def frozen_write(self, s, fs, fd, name):
        self._held_write(s, fs, fd, name)
        return s

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
