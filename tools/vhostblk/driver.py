# SPDX-License-Identifier: GPL-2.0-or-later
"""A tiny VMM: guest RAM, virtqueues and eventfds wired to a vhost-blk device."""

import os
import select
import time

from . import virtio as V
from .guestmem import GuestMemory
from .virtq import SplitQueue


class RingError(Exception):
    """The device signalled the vring error eventfd (it found a broken ring)."""

    def __init__(self, queues):
        super().__init__(f"device signalled ring error on queue(s) {sorted(queues)}")
        self.queues = set(queues)


class WaitTimeout(Exception):
    pass


class Request:
    """One virtio-blk request: header, data segments, status byte in guest RAM."""

    __slots__ = ("type", "sector", "segs", "data_writable", "hdr", "status_gpa",
                 "status", "used_len", "token", "submitted")

    def __init__(self, mem, rtype, sector, segs=(), data_writable=False, ioprio=0):
        self.type = rtype
        self.sector = sector
        self.segs = list(segs)               # [(gpa, len)]
        self.data_writable = data_writable
        self.hdr = mem.alloc(V.OUTHDR.size, 8)
        mem.write(self.hdr, V.OUTHDR.pack(rtype, ioprio, sector))
        self.status_gpa = mem.alloc(1, 1)
        mem.write(self.status_gpa, b"\xee")  # not a valid status: catches "never written"
        self.status = None
        self.used_len = None
        self.token = None
        self.submitted = 0.0

    def bufs(self):
        out = [(self.hdr, V.OUTHDR.size, False)]
        out += [(g, n, self.data_writable) for g, n in self.segs]
        out.append((self.status_gpa, 1, True))
        return out

    def data_len(self):
        return sum(n for _g, n in self.segs)


class Session:
    """Owns one device fd, guest memory, the queues and their eventfds."""

    def __init__(self, open_device, mem_size=64 << 20, queues=1, qsize=128,
                 want=0, indirect_max=32, log=None, backend=None, backend_early=True,
                 busyloop_us=None):
        self.open_device = open_device
        self.mem = GuestMemory(mem_size)
        self.nqueues = queues
        self.qsize = qsize
        self.want = want
        self.indirect_max = indirect_max
        self.log = log or (lambda msg: None)
        self.dev = None
        self.vqs = []
        self.kick, self.call, self.err = [], [], []
        self.features = 0
        self.offered = 0
        self.backend = backend   # (fd, flags), attached by start()
        self.backend_early = backend_early   # before GET_FEATURES (RO/DISCARD bits)
        self.busyloop_us = busyloop_us       # None: the module's default
        self._ring_mark = None
        self._scratch_mark = None
        self.restarts = 0

    # lifecycle ---------------------------------------------------------------
    def start(self):
        dev = self.open_device()
        self.dev = dev
        dev.set_owner()
        if self.backend is not None and self.backend_early:
            dev.set_backend(*self.backend)
        self.offered = dev.get_features()
        if not self.offered & V.bit(V.F_VERSION_1):
            raise RuntimeError(f"device does not offer VERSION_1 (features {self.offered:#x})")
        self.features = self.offered & (V.bit(V.F_VERSION_1) | self.want)
        dev.set_features(self.features)
        dev.set_mem_table(self.mem.regions())
        event_idx = bool(self.features & V.bit(V.F_EVENT_IDX))
        indirect = bool(self.features & V.bit(V.F_INDIRECT_DESC))
        if not self.vqs:
            self._ring_mark = self.mem.mark()
            for _q in range(self.nqueues):
                self.vqs.append(SplitQueue(self.mem, self.qsize, event_idx, indirect,
                                           self.indirect_max))
            self._scratch_mark = self.mem.mark()
        for q, vq in enumerate(self.vqs):
            vq.event_idx, vq.indirect = event_idx, indirect
            vq.mem.fill(vq.avail, V.ring_sizes(vq.num)[1])
            vq.mem.fill(vq.used, V.ring_sizes(vq.num)[2])
            vq.reset_state(0)
            vq.enable_cb()
            dev.set_vring_num(q, vq.num)
            dev.set_vring_base(q, 0)
            desc, used, avail = vq.hva_addrs()
            dev.set_vring_addr(q, desc, used, avail)
            if self.busyloop_us is not None:
                dev.set_vring_busyloop_timeout(q, self.busyloop_us)
        self._close_eventfds()
        for q in range(self.nqueues):
            k = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            c = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            e = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self.kick.append(k)
            self.call.append(c)
            self.err.append(e)
            dev.set_vring_call(q, c)
            dev.set_vring_err(q, e)
            dev.set_vring_kick(q, k)          # starts the queue: call/err first
        self._poll = select.poll()
        self._fdmap = {}
        for q in range(self.nqueues):
            self._poll.register(self.call[q], select.POLLIN)
            self._poll.register(self.err[q], select.POLLIN)
            self._fdmap[self.call[q]] = ("call", q)
            self._fdmap[self.err[q]] = ("err", q)
        if self.backend is not None and not self.backend_early:
            dev.set_backend(*self.backend)

    def set_backend(self, fd, flags=0):
        self.dev.set_backend(fd, flags)
        self.backend = (fd, flags) if fd >= 0 else None

    def restart(self):
        """Throw the device fd away and set everything up again on a new one."""
        self.restarts += 1
        if self.dev is not None:
            self.dev.close()
            self.dev = None
        self.start()

    def reset_vring(self, q):
        """Recover a broken queue without reopening: stop it, clear the ring, restart it.

        VHOST_GET_VRING_BASE stops the queue (completing in-flight requests), then
        SET_VRING_BASE/SET_VRING_ADDR point it at a fresh, empty ring.
        """
        self.dev.get_vring_base(q)
        vq = self.vqs[q]
        _dsz, asz, usz = V.ring_sizes(vq.num)
        self.mem.fill(vq.avail, asz)
        self.mem.fill(vq.used, usz)
        vq.reset_state(0)
        vq.enable_cb()
        for fd in (self.call[q], self.err[q]):
            try:
                os.eventfd_read(fd)
            except BlockingIOError:
                pass
        self.dev.set_vring_base(q, 0)
        desc, used, avail = vq.hva_addrs()
        self.dev.set_vring_addr(q, desc, used, avail)

    def _close_eventfds(self):
        for fd in self.kick + self.call + self.err:
            os.close(fd)
        self.kick, self.call, self.err = [], [], []

    def close(self):
        if self.dev is not None:
            self.dev.close()
            self.dev = None
        self._close_eventfds()
        self.vqs = []
        self.mem.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # scratch buffers -----------------------------------------------------------
    def reserve(self, size, align=4096):
        """Allocate memory that survives reset_scratch() (call after start())."""
        gpa = self.mem.alloc(size, align)
        self._scratch_mark = self.mem.mark()
        return gpa

    def reset_scratch(self):
        """Release every buffer allocated since start() (rings stay)."""
        self.mem.release_to(self._scratch_mark)

    # I/O -----------------------------------------------------------------------
    def submit(self, q, req, use_indirect=None):
        req.submitted = time.perf_counter()
        req.token = self.vqs[q].add(req.bufs(), req, use_indirect)
        return req

    def notify(self, q):
        if self.vqs[q].need_kick():
            os.eventfd_write(self.kick[q], 1)

    def kick_now(self, q):
        self.vqs[q].kick_old = self.vqs[q].avail_idx
        os.eventfd_write(self.kick[q], 1)

    def check_err(self):
        bad = []
        for q, fd in enumerate(self.err):
            try:
                os.eventfd_read(fd)
                bad.append(q)
            except BlockingIOError:
                pass
        if bad:
            raise RingError(bad)

    def reap(self, q):
        """Collect completions of queue q into their Request objects."""
        out = []
        mm, base = self.mem.mm, self.mem.gpa_base
        for req, used_len in self.vqs[q].get_used():
            req.used_len = used_len
            req.status = mm[req.status_gpa - base]
            out.append(req)
        return out

    def wait(self, pending, timeout=10.0, queues=None):
        """Wait until every request in ``pending`` completed. Returns them in order.

        Raises RingError if the device signals an error eventfd and WaitTimeout when
        the deadline passes.
        """
        left = set(id(r) for r in pending)
        queues = range(self.nqueues) if queues is None else queues
        deadline = time.monotonic() + timeout
        while True:
            for q in queues:
                for r in self.reap(q):
                    left.discard(id(r))
                if left:
                    self.vqs[q].enable_cb()
            for q in queues:
                for r in self.reap(q):
                    left.discard(id(r))
            if not left:
                return pending
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"{len(left)} of {len(pending)} requests not completed "
                                  f"within {timeout:.1f}s")
            events = self._poll.poll(max(1, int(remaining * 1000)))
            errq = []
            for fd, _ev in events:
                kind, q = self._fdmap[fd]
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    continue
                if kind == "err":
                    errq.append(q)
            if errq:
                for q in queues:
                    self.reap(q)
                raise RingError(errq)

    def run(self, q, reqs, timeout=10.0, use_indirect=None):
        """Submit reqs on queue q, kick, wait for all of them."""
        for r in reqs:
            self.submit(q, r, use_indirect)
        self.notify(q)
        return self.wait(reqs, timeout, queues=[q])
