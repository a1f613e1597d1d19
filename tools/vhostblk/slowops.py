# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of the per-device slow-op threads (FLUSH, DISCARD, WRITE_ZEROES).

- VHOST_SET_OWNER starts slow_ops_per_device kernel threads for the device, each in the owner's
  cgroup (root: the check first moves this process into a cgroup of its own, so "the owner's
  cgroup" is not the root one every kernel thread is in); close stops them;
- cap and isolation (root, debugfs, mkfs.ext4): device A's backing file is on an ext4 filesystem
  that is then frozen, so its DISCARDs block in the kernel (fallocate waits for the thaw). With
  3 queues x 128 of them sent, A runs exactly slow_ops_per_device of them (debugfs slow_ops:
  running, running_max) and queues the rest, and a FLUSH of device B, on another backing,
  completes meanwhile. Nothing here is timed: on a shared pool B's FLUSH waits for the thaw,
  which only comes after B's FLUSH was answered or timed out. After the thaw every one of A's
  DISCARDs completes OK and running_max is still the cap.
"""

import os
import time

from . import virtio as V
from .blkops import dwz_req, simple_req, write_req
from .devstats import stats_dir
from .driver import RingError, Session, WaitTimeout
from .scratchdev import Unavailable, frozen_ext4, release_then_close, unmet

BLK_BITS = (1 << 24) - 1
CGROOT = "/sys/fs/cgroup"
A_QUEUES, A_QSIZE = 3, 128       # 384 blocked DISCARDs: more than a shared workqueue runs at once


def kernel_threads(prefix="vhost-blk-"):
    """{tid: comm} of the kernel threads whose name starts with ``prefix``."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if comm.startswith(prefix) and ppid == 2:    # children of kthreadd
            out[int(pid)] = comm
    return out


def cgroup_of(pid="self"):
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read().strip()


def read_slow(d):
    """The device's debugfs slow_ops counters, None without that file (a module without them)."""
    try:
        with open(f"{d}/slow_ops") as f:
            return {k: int(v) for k, v in (line.split() for line in f)}
    except FileNotFoundError:
        return None


class OwnCgroup:
    """Root on cgroup v2 in the root cgroup: move this process to a child cgroup and back."""

    def __init__(self):
        self.path = None

    def __enter__(self):
        if os.geteuid() != 0 or cgroup_of() != "0::/" or not os.path.exists(f"{CGROOT}/cgroup.procs"):
            return None
        path = f"{CGROOT}/vhostblk-selftest-{os.getpid()}"
        try:
            os.mkdir(path)
            with open(f"{path}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            self._remove(path)
            return None
        self.path = path
        return path

    @staticmethod
    def _remove(path):
        for _i in range(50):          # tasks stopped a moment ago may still be leaving it
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)

    def __exit__(self, *exc):
        if self.path:
            with open(f"{CGROOT}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            self._remove(self.path)


class SlowOps:
    def __init__(self, lc):
        self.lc, self.rep = lc, lc.rep

    def run(self):
        rep = self.rep
        why = unmet(self.lc, "the fake device has no kernel threads")
        if why:
            rep.skip("[slowops] per-device slow-op threads", why)
            return
        probe = self.lc.open_device()
        cls = type(probe)
        probe.close()
        try:
            self.nthreads = int(cls.module_param("slow_ops_per_device"))
        except (OSError, ValueError) as e:
            # go on: the checks below show what a module without them does
            rep.check("[slowops] module parameter slow_ops_per_device", False, str(e))
            self.nthreads = None
        with OwnCgroup() as own:
            self.threads(own)
        self.cap_and_isolation()

    def threads(self, own):
        rep = self.rep
        name = (f"[slowops] SET_OWNER starts slow_ops_per_device ({self.nthreads}) threads "
                "in the owner's cgroup")
        before = set(kernel_threads())
        new = {}
        dev = self.lc.open_device()
        try:
            dev.set_owner()
            new = {t: c for t, c in kernel_threads().items() if t not in before}
            mine = cgroup_of()
            cgs = {t: cgroup_of(t) for t in new}
            rep.check(name, len(new) == self.nthreads and all(cg == mine for cg in cgs.values()),
                      f"new threads {sorted(new.values())}, cgroups {sorted(set(cgs.values()))} "
                      f"(owner: {mine!r}{', a cgroup made for the check' if own else ''})")
        finally:
            dev.close()
        # kthread_stop() returns once a thread has exited; its /proc entry goes when it is reaped,
        # a moment later
        deadline = time.monotonic() + 5
        while True:
            left = [t for t in new if os.path.exists(f"/proc/{t}")]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        rep.check("[slowops] slow-op threads stopped on close", not left, f"still there 5 s after close: {left}")

    def cap_and_isolation(self):
        rep = self.rep
        name = "[slowops] cap and isolation with a frozen filesystem"
        why = unmet(self.lc, "the fake device has no kernel threads", root="freezing a filesystem", debugfs=True)
        if why:
            rep.skip(name, why)
            return
        try:
            with frozen_ext4("vhostblk-slowops-") as fs:
                self._on_frozen(fs, name)
        except Unavailable as e:
            rep.skip(name, str(e))

    def _on_frozen(self, fs, name):
        rep = self.rep
        afd = None
        a = b = None
        try:
            afd = os.open(os.path.join(fs.mnt, "a.img"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.ftruncate(afd, 16 << 20)
            a = Session(self.lc.open_device, self.lc.mem, A_QUEUES, A_QSIZE,
                        want=BLK_BITS | V.bit(V.F_INDIRECT_DESC), backend=(afd, 0))
            a.start()
            b = Session(self.lc.open_device, self.lc.mem, 1, self.lc.qsize, want=BLK_BITS,
                        backend=(self.lc.fd, 0))
            b.start()
            if not a.features & V.bit(V.BLK_F_DISCARD) or not a.features & V.bit(V.F_INDIRECT_DESC):
                rep.check(name, False, f"DISCARD and INDIRECT_DESC not both negotiated on ext4: "
                                       f"{' '.join(V.feature_names(a.features))}")
                return
            self._blocked(a, b, fs)
        except (OSError, RingError, WaitTimeout) as e:
            rep.check(name, False, str(e))
        finally:
            release_then_close(fs, [a, b], [afd])

    def _blocked(self, a, b, fs):
        rep, n = self.rep, self.nthreads
        da, db = stats_dir(a.dev), stats_dir(b.dev)
        fs.freeze()
        reqs = []
        for q in range(A_QUEUES):
            for i in range(A_QSIZE):
                reqs.append(a.submit(q, dwz_req(a, V.T_DISCARD, [((q * A_QSIZE + i) * 8, 8)]), True))
            a.kick_now(q)
        total = len(reqs)
        # convergence, not timing: every DISCARD gets taken by a queue worker and handed over
        deadline = time.monotonic() + self.lc.timeout
        st = read_slow(da)
        while st and st["running"] + st["queued"] < total and time.monotonic() < deadline:
            time.sleep(0.05)
            st = read_slow(da)
        if st is None:
            time.sleep(2)       # no counters to watch: give the workers time to take them
        done = [r for q in range(A_QUEUES) for r in a.reap(q)]
        # device B: a write and a FLUSH on another backing are served while A is stuck
        name = "[slowops] another device's FLUSH is answered while this one's slow ops block"
        try:
            w = b.run(0, [write_req(b, 0, bytes(4096))], timeout=self.lc.timeout)[0]
            f = b.run(0, [simple_req(b, V.T_FLUSH)], timeout=self.lc.timeout)[0]
        except WaitTimeout as e:
            rep.check(name, False, f"{e} (waiting behind device A's blocked DISCARDs)")
            return
        stb = read_slow(db)
        done += [r for q in range(A_QUEUES) for r in a.reap(q)]
        rep.check(name, w.status == V.S_OK and f.status == V.S_OK and not done
                  and stb is not None and stb["done"] >= 1,
                  f"B: write {w.status}, FLUSH {f.status}, slow_ops {stb}; "
                  f"A's DISCARDs completed meanwhile: {len(done)} of {total}")
        rep.check(f"[slowops] {total} blocked DISCARDs on one device: {n} running, the rest queued",
                  st is not None and n is not None and st["threads"] == n and st["running"] == n
                  and st["queued"] == total - n and st["running_max"] == n,
                  f"debugfs slow_ops of A: {st}")
        fs.thaw()
        a.wait(reqs, timeout=self.lc.timeout * 3)
        bad = [r.status for r in reqs if r.status != V.S_OK]
        st = read_slow(da)
        rep.check("[slowops] after the thaw every DISCARD completes, never more than the cap at once",
                  not bad and st is not None and st["running"] == 0 and st["queued"] == 0
                  and st["running_max"] == n and st["done"] == total,
                  f"bad statuses {bad[:4]} ({len(bad)}), slow_ops of A: {st}")


def run(lc):
    SlowOps(lc).run()
