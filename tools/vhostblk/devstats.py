# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of the module's per-queue statistics (debugfs) and of flush coalescing.

- /proc/self/fdinfo/<fd> of a /dev/vhost-blk fd names the device id and its owner's pid;
- /sys/kernel/debug/vhost-blk/<owner pid>-<id>/queue<N> exist while the device has an owner and
  count exactly the requests sent (per queue: reads, writes, bytes, errors, UNSUPP, others,
  nothing in flight once all are answered); the directory is gone after close;
- FLUSH coalescing: the first FLUSH on a new backend syncs; a second one with no write completed
  in between is answered without fsync (flushes_skipped); after a write (on any queue), a
  WRITE_ZEROES or a new backend the next FLUSH syncs again;
- on a buffered block device a write followed by FLUSH has reached the device (the coalescing
  never skips a flush that is due).
"""

import os

from . import virtio as V
from .blkops import dwz_req, read_req, simple_req, write_req
from .driver import RingError, Session, WaitTimeout
from .lifecycle import sectors_written

DEBUGFS = "/sys/kernel/debug"
BLK_BITS = (1 << 24) - 1


def fdinfo(dev):
    """The vhost-blk lines of the fd's fdinfo as {key: int} ({} when there are none)."""
    out = {}
    with open(f"/proc/self/fdinfo/{dev.fd}") as f:
        for line in f:
            key, _sep, value = line.partition(":")
            if key.startswith("vhost-blk-"):
                out[key] = int(value)
    return out


def stats_dir(dev):
    info = fdinfo(dev)
    return f"{DEBUGFS}/vhost-blk/{info.get('vhost-blk-owner')}-{info.get('vhost-blk-id')}"


def read_queue(d, q):
    with open(f"{d}/queue{q}") as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def debugfs_mounted():
    with open("/proc/mounts") as f:
        return any(line.split()[1] == DEBUGFS and line.split()[2] == "debugfs" for line in f)


def _diff(got, want):
    return {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}


class DevStats:
    def __init__(self, lc):
        self.lc, self.rep = lc, lc.rep

    def session(self, queues=1):
        lc = self.lc
        s = Session(lc.open_device, lc.mem, queues, lc.qsize, want=BLK_BITS, backend=(lc.fd, 0))
        try:
            s.start()
        except BaseException:
            s.close()
            raise
        return s

    def run(self):
        rep = self.rep
        dev = self.lc.open_device()
        try:
            if not getattr(dev, "IN_KERNEL", False):
                rep.skip("[stats] per-queue statistics", "the fake device has no debugfs")
                return
        finally:
            dev.close()
        s = self.session(2)
        try:
            info = fdinfo(s.dev)
            rep.check("[stats] fdinfo names the device id and its owner",
                      info.get("vhost-blk-owner") == os.getpid() and info.get("vhost-blk-id", 0) > 0,
                      f"{info} (pid {os.getpid()})")
            if not debugfs_mounted():
                rep.skip("[stats] per-queue statistics", f"debugfs not mounted on {DEBUGFS}")
                return
            if not os.access(DEBUGFS, os.R_OK | os.X_OK):
                # debugfs is mode 0700 root: an unprivileged owner (QEMU under libvirt) cannot look;
                # the same checks run in the self-test as root.
                rep.skip("[stats] per-queue statistics", f"{DEBUGFS} is not readable by uid {os.getuid()}")
                return
            d = stats_dir(s.dev)
            files = sorted(os.listdir(d)) if os.path.isdir(d) else []
            if not rep.check("[stats] debugfs directory <owner pid>-<id> with a file per queue",
                             "queue0" in files and "queue1" in files, f"{d}: {files[:4]}..."):
                return
            self.counts(s, d)
            self.coalescing(s, d)
        except (OSError, RingError, WaitTimeout) as e:
            rep.check("[stats] statistics and flush coalescing", False, str(e))
        finally:
            s.close()
        rep.check("[stats] debugfs directory removed on close", not os.path.exists(d), d)
        if self.lc.isblk and not self.lc.direct:
            self.flush_reaches_device()

    def counts(self, s, d):
        cap = self.lc.cap
        q0 = [write_req(s, 0, bytes(4096)), write_req(s, 8, bytes(4096)), write_req(s, 16, bytes(4096)),
              read_req(s, 0, 8), read_req(s, 8, 8), read_req(s, cap, 8),   # the last beyond the end
              simple_req(s, V.T_GET_ID, 0, V.ID_BYTES), simple_req(s, 0x7f)]
        s.run(0, q0, timeout=self.lc.timeout)
        s.run(1, [write_req(s, 64, bytes(1024))], timeout=self.lc.timeout)
        s.reset_scratch()
        want0 = {"requests": 8, "reads": 3, "read_bytes": 8192, "writes": 3, "write_bytes": 12288,
                 "flushes": 0, "discards": 0, "write_zeroes": 0, "others": 2, "errors": 1,
                 "unsupported": 1, "inflight": 0}
        want1 = {"requests": 1, "reads": 0, "writes": 1, "write_bytes": 1024, "errors": 0, "inflight": 0}
        st0, st1 = read_queue(d, 0), read_queue(d, 1)
        self.rep.check("[stats] queue0 counts the requests sent (statuses "
                       f"{[V.STATUS_NAMES.get(r.status) for r in q0]})", not _diff(st0, want0),
                       f"differences (got, want): {_diff(st0, want0)}")
        self.rep.check("[stats] queue1 counts its own requests only", not _diff(st1, want1),
                       f"differences (got, want): {_diff(st1, want1)}")

    def _flush(self, s, q=0):
        r = s.run(q, [simple_req(s, V.T_FLUSH)], timeout=self.lc.timeout)[0]
        s.reset_scratch()
        return r.status

    def coalescing(self, s, d):
        rep = self.rep
        if not s.features & V.bit(V.BLK_F_FLUSH):
            rep.check("[stats] FLUSH negotiated", False, f"features {s.features:#x}")
            return
        s.dev.set_backend(self.lc.fd, 0)          # a new backend: its first FLUSH syncs
        steps = [("first FLUSH on a new backend syncs", None, False),
                 ("FLUSH with no write since the last one skipped", None, True),
                 ("FLUSH after a write syncs", lambda: s.run(0, [write_req(s, 32, bytes(512))]), False),
                 ("FLUSH after a write on another queue syncs",
                  lambda: s.run(1, [write_req(s, 40, bytes(512))]), False),
                 ("FLUSH after a read only skipped", lambda: s.run(1, [read_req(s, 0, 1)]), True)]
        if s.dev.get_info()["flags"] & self.lc.abi.VHOST_BLK_INFO_F_WRITE_ZEROES:
            steps.append(("FLUSH after WRITE_ZEROES syncs",
                          lambda: s.run(0, [dwz_req(s, V.T_WRITE_ZEROES, [(48, 8)])]), False))
        steps.append(("FLUSH after a new backend syncs", lambda: s.dev.set_backend(self.lc.fd, 0), False))
        for name, before, skipped in steps:
            if before:
                before()
                s.reset_scratch()
            old = read_queue(d, 0)
            status = self._flush(s)
            new = read_queue(d, 0)
            got = new["flushes_skipped"] - old["flushes_skipped"]
            rep.check(f"[stats] {name}", status == V.S_OK and new["flushes"] == old["flushes"] + 1
                      and got == (1 if skipped else 0),
                      f"status {status}, flushes {old['flushes']}->{new['flushes']}, "
                      f"skipped {old['flushes_skipped']}->{new['flushes_skipped']}")

    def flush_reaches_device(self):
        """Buffered block device: a FLUSH after a skipped one still writes the new data out."""
        s = self.session()
        name = "[stats] a write then FLUSH reaches the block device (after a coalesced FLUSH)"
        try:
            self._flush(s)
            self._flush(s)
            nsect = 256
            s.run(0, [write_req(s, 2048, os.urandom(nsect * V.SECTOR))], timeout=self.lc.timeout)
            before = sectors_written(self.lc.path)
            status = self._flush(s)
            written = sectors_written(self.lc.path) - before
            self.rep.check(name, status == V.S_OK and written >= nsect,
                           f"status {status}, {written} sectors reached the device for {nsect} written")
        except (OSError, RingError, WaitTimeout) as e:
            self.rep.check(name, False, str(e))
        finally:
            s.close()


def run(lc):
    DevStats(lc).run()
