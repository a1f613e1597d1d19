# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of the device's lifecycle: what happens around the I/O, not in it.

- an O_APPEND backing fd is refused (every guest write would land at the end of the file);
- a ring restarted with SET_VRING_BASE serves entries the guest added while it was stopped,
  without a new kick;
- SET_BACKEND with a full queue returns, and every request completes;
- without VIRTIO_BLK_F_FLUSH a write is stable when it completes (writethrough): on a
  buffered block device it has reached the device, not only the page cache;
- closing the device while O_DIRECT writes and flushes complete (from interrupt context and the
  device's slow-op threads), with the worker sleeping or busy-polling, many times over: release must
  wait for every completer before it frees the device (the kernel log is checked by the caller).
"""

import errno
import os

from . import virtio as V
from .blkops import read_data, read_req, simple_req, write_req
from .driver import Session, WaitTimeout

BLK_BITS = (1 << 24) - 1


def sectors_written(path):
    """Sectors written to block device ``path`` so far (/sys/dev/block/MAJ:MIN/stat, field 7)."""
    st = os.stat(path)
    with open(f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}/stat") as f:
        return int(f.read().split()[6])


class Lifecycle:
    def __init__(self, open_device, rep, abi, path, fd, cap, isblk, direct, rnd, timeout, mem_mib=64, qsize=128):
        self.open_device, self.rep, self.abi = open_device, rep, abi
        self.path, self.fd, self.cap, self.isblk, self.direct = path, fd, cap, isblk, direct
        self.rnd, self.timeout, self.mem, self.qsize = rnd, timeout, mem_mib << 20, qsize

    def session(self, want=BLK_BITS):
        return self.session_on(self.fd, want)

    def session_on(self, fd, want=BLK_BITS):
        """One started queue with backend ``fd``."""
        s = Session(self.open_device, self.mem, 1, self.qsize, want=want, backend=(fd, 0))
        try:
            s.start()
        except BaseException:
            s.close()
            raise
        return s

    def run(self, close_races=0):
        self.append_refused()
        for name, check in (("restart without kick", self.restart_without_kick),
                            ("SET_BACKEND with a full queue", self.backend_swap_with_full_queue),
                            ("writethrough without FLUSH", self.writethrough),
                            ("close with I/O in flight", lambda: self.close_races(close_races))):
            try:
                check()
            except (OSError, WaitTimeout) as e:
                self.rep.check(f"[lifecycle] {name}", False, str(e))

    def append_refused(self):
        name = "[lifecycle] O_APPEND backing fd refused (EINVAL)"
        afd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        dev = self.open_device()
        try:
            dev.set_owner()
            dev.set_backend(afd, 0)
            self.rep.check(name, False, "accepted")
        except OSError as e:
            self.rep.check(name, e.errno == errno.EINVAL, str(e))
        finally:
            dev.close()
            os.close(afd)

    def restart_without_kick(self):
        """Stop the ring (GET_VRING_BASE), add a write to it with no kick, restart it at the same
        index (SET_VRING_BASE, as a VMM does after migration or a stop/cont): the device must
        serve it on its own. The data is then read back in a separate request (requests in
        flight together have no order)."""
        s = self.session()
        name = "[lifecycle] restarted ring served entries added while stopped"
        try:
            # one request first: the worker has consumed the kick of the ring's start and is idle
            s.run(0, [read_req(s, 0, 1)], timeout=self.timeout)
            base = s.dev.get_vring_base(0)
            data = self.rnd.randbytes(8 * V.SECTOR)
            w = s.submit(0, write_req(s, 8, data))   # published in the avail ring, not kicked
            s.dev.set_vring_base(0, base)
            try:
                s.wait([w], timeout=min(self.timeout, 10.0), queues=[0])
            except WaitTimeout as e:
                self.rep.check(name, False, f"{e}: the device waited for a kick")
                return
            r = s.run(0, [read_req(s, 8, 8)], timeout=self.timeout)[0]
            same = read_data(s, r) == data
            self.rep.check(name, w.status == V.S_OK and r.status == V.S_OK and same,
                           f"statuses {w.status}/{r.status}, data read back equal {same}")
        finally:
            s.close()

    def backend_swap_with_full_queue(self):
        """Fill the queue with writes, kick, and attach the backend again at once: SET_BACKEND
        drains the old backend's requests and returns; every write completes OK and is there."""
        s = self.session()
        try:
            n = min(self.qsize // 3, 32)  # three descriptors each: header, data, status
            span = 8
            datas = [self.rnd.randbytes(span * V.SECTOR) for _i in range(n)]
            reqs = [s.submit(0, write_req(s, 64 + i * span, d)) for i, d in enumerate(datas)]
            s.kick_now(0)
            s.dev.set_backend(self.fd, 0)
            s.wait(reqs, timeout=self.timeout, queues=[0])
            bad = [r.status for r in reqs if r.status != V.S_OK]
            s.reset_scratch()
            back = s.run(0, [read_req(s, 64, n * span)], timeout=self.timeout)[0]
            same = read_data(s, back) == b"".join(datas)
            self.rep.check("[lifecycle] SET_BACKEND with a full queue: writes complete and read back",
                           not bad and same, f"{len(reqs)} writes, bad statuses {bad[:4]}, data equal {same}")
        finally:
            s.close()

    def writethrough(self):
        name = "[lifecycle] without FLUSH a write reaches the block device before it completes"
        if not self.isblk or self.direct:
            self.rep.skip(name, "needs a buffered block device backend (--blockdev without --direct)")
            return
        s = self.session(want=BLK_BITS & ~V.bit(V.BLK_F_FLUSH))
        try:
            if s.features & V.bit(V.BLK_F_FLUSH):
                self.rep.check(name, False, "FLUSH negotiated although not acked")
                return
            nsect = 256
            before = sectors_written(self.path)
            s.run(0, [write_req(s, 1024, self.rnd.randbytes(nsect * V.SECTOR))], timeout=self.timeout)
            written = sectors_written(self.path) - before
            self.rep.check(name, written >= nsect, f"{written} sectors reached the device for {nsect} written")
        finally:
            s.close()

    def close_races(self, rounds):
        """Open, start two queues, put writes and flushes in flight, close at once; ``rounds`` times,
        alternating a sleeping and a busy-polling worker."""
        if rounds <= 0:
            return
        dfd = os.open(self.path, os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
        closed = 0
        try:
            for i in range(rounds):
                s = Session(self.open_device, 8 << 20, 2, 64, want=BLK_BITS, backend=(dfd, 0),
                            busyloop_us=200 if i % 2 else 0)
                try:
                    s.start()
                    for q in range(2):
                        for j in range(8):
                            s.submit(q, write_req(s, (q * 8 + j) * 8, bytes(4096)))
                        if s.features & V.bit(V.BLK_F_FLUSH):
                            s.submit(q, simple_req(s, V.T_FLUSH))
                        s.kick_now(q)
                finally:
                    s.close()      # release runs while the completions arrive
                closed += 1
        finally:
            os.close(dfd)
        self.rep.check(f"[lifecycle] closed the device with writes and flushes in flight ({rounds} times)",
                       closed == rounds, f"{closed} closes returned")
