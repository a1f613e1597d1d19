# SPDX-License-Identifier: GPL-2.0-or-later
"""An in-process stand-in for /dev/vhost-blk, for testing the exerciser itself.

It offers the same methods as device.VhostBlkDevice and consumes the split
rings from a worker thread woken by the kick eventfds, reading guest memory
through the user-space addresses of the memory table, as the kernel does.
It is a model of the device for tests, not a second implementation to ship.
"""

import ctypes
import errno
import fcntl
import os
import select
import stat
import struct
import threading

from . import virtio as V
from .abi import MAX_BUSYLOOP_US
from .addrspace import user_top
from .backend import host_topology

_U16 = struct.Struct("<H")
OFFERED = (V.bit(V.F_VERSION_1) | V.bit(V.F_INDIRECT_DESC) | V.bit(V.F_EVENT_IDX)
           | V.bit(V.BLK_F_FLUSH) | V.bit(V.BLK_F_SEG_MAX) | V.bit(V.BLK_F_BLK_SIZE)
           | V.bit(V.BLK_F_MQ) | V.bit(V.BLK_F_DISCARD) | V.bit(V.BLK_F_WRITE_ZEROES)
           | V.bit(V.VHOST_F_LOG_ALL))
# statfs f_type of filesystems the module refuses backends on (kmod-src/backend.c)
PSEUDO_FS = {0x9fa0, 0x62656572, 0x64626720, 0x74726163, 0x73636673, 0xf97cff8c, 0x43415d53,
             0x5a3c69f0, 0x27e0eb, 0x63677270, 0x7655821, 0xcafe4a11, 0x62656570, 0xde5e81e4,
             0x6165676C, 0x42494e4d, 0x65735543, 0x6e736673, 0x09041934, 0x6c6f6f70, 0x1cd1,
             0x5345434d, 0x50495045, 0x534F434B, 0x62646576, 0x444d4142}
MAX_IO_SECTORS = (1 << 30) >> 9  # VBLK_MAX_IO_BYTES
MAX_DWZ_SEGS = 16


class _StatFs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("rest", ctypes.c_long * 14)]


def fs_type(fd):
    """statfs f_type of the filesystem holding ``fd``."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = _StatFs()
    if libc.fstatfs(fd, ctypes.byref(buf)) != 0:
        raise OSError(ctypes.get_errno(), "fstatfs")
    return buf.f_type & 0xFFFFFFFF


def _log_range_ok(base, gpa, size):
    return base + ((gpa + size - 1) >> 12) // 8 < user_top()


class BadRing(Exception):
    pass


class _Vring:
    def __init__(self):
        self.num = 0
        self.last_avail = 0
        self.used_idx = 0
        self.signalled_used = 0
        self.desc = self.avail = self.used = 0
        self.kick = self.call = self.err = -1
        self.broken = False
        self.busyloop_us = 0
        self.stopped = False      # GET_VRING_BASE: no new requests until SET_VRING_BASE/KICK


class FakeVhostBlk:
    IN_KERNEL = False
    # module parameters and the system-wide counts they bound (quota.c)
    PARAMS = {"max_devices": "1024", "max_workers": "4096"}
    COUNTS = {"devices": 0, "workers": 0}
    MAX_QUEUES = 8
    MAX_QUEUE_SIZE = 1024
    MAX_BUSYLOOP_US = MAX_BUSYLOOP_US
    SEG_MAX = 126

    def __init__(self, abi, max_queues=MAX_QUEUES):
        self.abi = abi
        self.max_queues = max_queues
        self.owner = False
        self.features = 0
        self.regions = []
        self.vrings = [_Vring() for _q in range(max_queues)]
        self.backend_fd = -1
        self.readonly = False
        self.capacity = 0
        self.requests = 0
        self.serial = bytes(20)
        self.log_base = 0
        self.phys_blk_size = self.opt_io_size = 0
        self._workers = 0
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = None
        self.fd = 0

    # ioctls ----------------------------------------------------------------------
    @classmethod
    def module_param(cls, name, value=None):
        old = cls.PARAMS[name]
        if value is not None:
            cls.PARAMS[name] = str(value)
        return old

    def set_owner(self):
        if self.owner:
            raise OSError(errno.EBUSY, "owner already set")
        if self.COUNTS["devices"] >= int(self.PARAMS["max_devices"]):
            raise OSError(errno.EMFILE, "max_devices reached")
        self.COUNTS["devices"] += 1
        self.owner = True
        self._thread = threading.Thread(target=self._worker, daemon=True)
        self._thread.start()

    def _uncount(self):
        if self.owner:
            self.COUNTS["devices"] -= 1
        self.COUNTS["workers"] -= self._workers
        self._workers = 0

    def reset_owner(self):
        self._stop_worker()
        self._uncount()
        serial = self.serial                  # belongs to the device
        self.__init__(self.abi, self.max_queues)
        self.serial = serial

    def set_serial(self, serial, length=None, reserved=0, pad=None):
        n = len(serial) if length is None else length
        if n > 20 or reserved or any(pad or b""):
            raise OSError(errno.EINVAL, "bad serial")
        self.serial = bytes(serial[:n]).ljust(20, b"\0")[:20]

    def get_features(self):
        f = OFFERED
        if self.backend_fd < 0:
            f &= ~(V.bit(V.BLK_F_DISCARD) | V.bit(V.BLK_F_WRITE_ZEROES))
        elif self.readonly:
            f |= V.bit(V.BLK_F_RO)
        return f

    def set_features(self, f):
        if f & ~self.get_features():
            raise OSError(errno.EOPNOTSUPP, "unknown features")
        if not f & V.bit(V.F_VERSION_1):
            raise OSError(errno.EINVAL, "VERSION_1 not acked")
        if f & V.bit(V.VHOST_F_LOG_ALL) and self.log_base and not self._covers(self.regions):
            raise OSError(errno.EFAULT, "dirty log does not cover the memory table")
        self.features = f

    def _covers(self, regions, base=None):
        base = self.log_base if base is None else base
        return all(_log_range_ok(base, gpa, size) for gpa, size, _u in regions)

    def set_mem_table(self, regions):
        if self.features & V.bit(V.VHOST_F_LOG_ALL) and self.log_base and \
                not self._covers(regions):
            raise OSError(errno.EFAULT, "dirty log does not cover the memory table")
        self.regions = list(regions)

    def set_log_base(self, addr):
        if addr and not self._covers(self.regions, addr):
            raise OSError(errno.EFAULT, "dirty log does not cover the memory table")
        self.log_base = addr

    def set_log_fd(self, fd):
        pass

    def _vq(self, i):
        if not 0 <= i < self.max_queues:
            raise OSError(errno.ENOBUFS, "bad queue index")
        return self.vrings[i]

    def set_vring_num(self, i, num):
        if not num or num & (num - 1) or num > self.MAX_QUEUE_SIZE:
            raise OSError(errno.EINVAL, "bad num")
        self._vq(i).num = num

    def set_vring_base(self, i, base):
        vq = self._vq(i)
        if base > 0xFFFF:
            raise OSError(errno.EINVAL, "base beyond 16 bits")
        vq.last_avail = vq.used_idx = vq.signalled_used = base
        vq.broken = vq.stopped = False
        if vq.kick >= 0:
            os.eventfd_write(vq.kick, 1)      # a restarted ring needs no new kick (the module kicks itself)

    def get_vring_base(self, i):
        vq = self._vq(i)
        with self._lock:      # the pass in progress (and its used entries) is over
            vq.stopped = True
            return vq.last_avail

    def set_vring_addr(self, i, desc, used, avail, flags=0, log=0):
        vq = self._vq(i)
        if desc & 15 or avail & 1 or used & 3:
            raise OSError(errno.EINVAL, "misaligned ring")
        vq.desc, vq.used, vq.avail = desc, used, avail
        vq.broken = False

    def set_vring_kick(self, i, fd):
        vq = self._vq(i)
        if fd >= 0 and not getattr(vq, "worker", False):
            if self.COUNTS["workers"] >= int(self.PARAMS["max_workers"]):
                raise OSError(errno.ENOSPC, "max_workers reached")
            self.COUNTS["workers"] += 1
            self._workers += 1
            vq.worker = True
        vq.kick = fd
        vq.stopped = False
        os.write(self._stop_w, b"r")          # re-read the fd set

    def set_vring_call(self, i, fd):
        self._vq(i).call = fd

    def set_vring_err(self, i, fd):
        self._vq(i).err = fd

    def set_vring_busyloop_timeout(self, i, usecs):
        if usecs > self.MAX_BUSYLOOP_US:
            raise OSError(errno.EINVAL, "busy-loop timeout too long")
        self._vq(i).busyloop_us = usecs   # the fake never sleeps long anyway

    def get_vring_busyloop_timeout(self, i):
        return self._vq(i).busyloop_us

    def set_backend(self, fd, flags=0):
        readonly = bool(flags & self.abi.VHOST_BLK_BACKEND_F_READONLY)
        if fd >= 0 and not (stat.S_ISREG(os.fstat(fd).st_mode) or stat.S_ISBLK(os.fstat(fd).st_mode)):
            raise OSError(errno.EINVAL, "backend is neither a regular file nor a block device")
        if fd >= 0 and fs_type(fd) in PSEUDO_FS:
            raise OSError(errno.EINVAL, "backend on a pseudo filesystem")
        if fd >= 0 and not readonly:   # refused: the old backend stays, as in the module
            fl = fcntl.fcntl(fd, fcntl.F_GETFL)
            if fl & os.O_ACCMODE == os.O_RDONLY:
                raise OSError(errno.EBADF, "backend fd not open for writing")
            if fl & os.O_APPEND:
                raise OSError(errno.EINVAL, "O_APPEND backing fd")
        with self._lock:
            if self.backend_fd >= 0:
                os.close(self.backend_fd)
                self.backend_fd, self.capacity = -1, 0
            if fd < 0:
                return
            # its own open file: unaligned I/O from Python must not inherit the caller's O_DIRECT
            mode = os.O_RDONLY if readonly else os.O_RDWR
            self.backend_fd = os.open(f"/proc/self/fd/{fd}", mode | os.O_CLOEXEC)
            self.readonly = readonly
            st = os.fstat(fd)
            size = os.lseek(fd, 0, os.SEEK_END) if stat.S_ISBLK(st.st_mode) else st.st_size
            self.capacity = size // V.SECTOR
            self.phys_blk_size, self.opt_io_size = host_topology(st)
        os.write(self._stop_w, b"r")
        for vq in self.vrings:  # the module kicks every queue after a swap
            if vq.kick >= 0:
                os.eventfd_write(vq.kick, 1)

    def get_info(self):
        a = self.abi
        flags = 0
        if self.backend_fd >= 0:
            flags |= a.VHOST_BLK_INFO_F_BACKEND | a.VHOST_BLK_INFO_F_DISCARD
            flags |= a.VHOST_BLK_INFO_F_WRITE_ZEROES
            if self.readonly:
                flags |= a.VHOST_BLK_INFO_F_READONLY
        backend = self.backend_fd >= 0
        dwz = 0xFFFFFFF8 if flags & a.VHOST_BLK_INFO_F_DISCARD else 0
        return {"abi_version": a.VHOST_BLK_ABI_VERSION, "max_queues": self.max_queues,
                "max_queue_size": self.MAX_QUEUE_SIZE, "seg_max": self.SEG_MAX,
                "features": self.get_features(), "capacity": self.capacity, "blk_size": 512,
                "flags": flags, "inflight": 0, "phys_blk_size": self.phys_blk_size if backend else 0,
                "opt_io_size": self.opt_io_size if backend else 0,
                "max_sectors": MAX_IO_SECTORS, "discard_granularity": 4096 if dwz else 0,
                "max_discard_sectors": dwz, "max_write_zeroes_sectors": dwz,
                "max_dwz_seg": MAX_DWZ_SEGS, "reserved": 0}

    def close(self):
        self._stop_worker()
        self._uncount()
        self.owner = False
        if self.backend_fd >= 0:
            os.close(self.backend_fd)
            self.backend_fd = -1
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _stop_worker(self):
        if self._thread is not None:
            os.write(self._stop_w, b"q")
            self._thread.join(5)
            self._thread = None

    # guest memory -------------------------------------------------------------
    def _log_write(self, hva, n):
        """Mark guest pages of VMM range [hva, hva + n) dirty, as the module's log.c does."""
        base = self.log_base        # once: SET_LOG_BASE may set it to 0 meanwhile (racefuzz does)
        if not (self.features & V.bit(V.VHOST_F_LOG_ALL) and base) or n <= 0:
            return
        for gpa0, size, uaddr in self.regions:
            lo, hi = max(hva, uaddr), min(hva + n, uaddr + size)
            for pfn in range((gpa0 + lo - uaddr) >> 12, ((gpa0 + hi - 1 - uaddr) >> 12) + 1) \
                    if lo < hi else ():
                addr = base + pfn // 8
                cur = self._rd(addr, 1)[0]
                self._wr(addr, bytes([cur | 1 << (pfn % 8)]))

    def _hva(self, gpa, length):
        """User address of [gpa, gpa + length); it may span regions that are adjacent in both
        spaces (the module copies region by region; the fake needs one contiguous range)."""
        regions, hva, hva_next, end = list(self.regions), None, None, gpa + max(length, 1)
        if length < 0:
            raise BadRing(f"negative length {length}")
        while gpa < end:
            r = next(((s, n, u) for s, n, u in regions if s <= gpa < s + n), None)
            if r is None or (hva_next is not None and r[2] + gpa - r[0] != hva_next):
                raise BadRing(f"GPA {gpa:#x}+{length} outside memory table")
            hva = r[2] + gpa - r[0] if hva is None else hva
            hva_next = r[2] + r[1]
            gpa = r[0] + r[1]
        return hva

    @staticmethod
    def _rd(hva, n):
        return ctypes.string_at(hva, n)

    @staticmethod
    def _wr(hva, data):
        ctypes.memmove(hva, data, len(data))

    # worker -------------------------------------------------------------------------
    def _worker(self):
        while True:
            p = select.poll()
            p.register(self._stop_r, select.POLLIN)
            kicks = {vq.kick: q for q, vq in enumerate(self.vrings) if vq.kick >= 0}
            for fd in kicks:
                p.register(fd, select.POLLIN)
            for fd, _ev in p.poll(1000):
                if fd == self._stop_r:
                    if b"q" in os.read(self._stop_r, 64):
                        return
                    continue
                try:
                    os.eventfd_read(fd)
                except (BlockingIOError, OSError):
                    continue
                with self._lock:  # set_backend waits for the request being served, as the module drains
                    self._process(kicks[fd])

    def _process(self, q):
        vq = self.vrings[q]
        if vq.broken or vq.stopped or not vq.num or self.backend_fd < 0:
            return
        event_idx = bool(self.features & V.bit(V.F_EVENT_IDX))
        try:
            while True:
                avail_idx = _U16.unpack(self._rd(vq.avail + 2, 2))[0]
                if avail_idx == vq.last_avail:
                    if event_idx:
                        self._wr(vq.used + 4 + 8 * vq.num, _U16.pack(vq.last_avail))
                        if _U16.unpack(self._rd(vq.avail + 2, 2))[0] != vq.last_avail:
                            continue
                    break
                if ((avail_idx - vq.last_avail) & 0xFFFF) > vq.num:
                    raise BadRing("avail idx moved more than the ring size")
                head = _U16.unpack(self._rd(vq.avail + 4 + 2 * (vq.last_avail % vq.num), 2))[0]
                bufs = self._walk(vq, head)
                vq.last_avail = (vq.last_avail + 1) & 0xFFFF
                written = self._serve(bufs)
                self._wr(vq.used + 4 + 8 * (vq.used_idx % vq.num),
                         struct.pack("<II", head, written))
                vq.used_idx = (vq.used_idx + 1) & 0xFFFF
                self._wr(vq.used + 2, _U16.pack(vq.used_idx))
                self.requests += 1
        except BadRing:
            vq.broken = True
            if vq.err >= 0:
                os.eventfd_write(vq.err, 1)
            return
        self._signal(vq, event_idx)

    def _signal(self, vq, event_idx):
        old, new = vq.signalled_used, vq.used_idx
        if old == new:
            return
        if event_idx:
            used_event = _U16.unpack(self._rd(vq.avail + 4 + 2 * vq.num, 2))[0]
            need = V.vring_need_event(used_event, new, old)
        else:
            need = not _U16.unpack(self._rd(vq.avail, 2))[0] & V.AVAIL_F_NO_INTERRUPT
        vq.signalled_used = new
        if need and vq.call >= 0:
            os.eventfd_write(vq.call, 1)

    def _walk(self, vq, head):
        """Follow a chain; returns [(hva, len, writable)]. Raises BadRing."""
        if head >= vq.num:
            raise BadRing(f"head {head} >= num")
        out, seen_write = [], False
        table, tnum, idx, count, in_indirect = vq.desc, vq.num, head, 0, False
        while True:
            count += 1
            if count > tnum:
                raise BadRing("descriptor loop or chain too long")
            addr, length, flags, nxt = V.DESC.unpack(self._rd(table + V.DESC_SIZE * idx, 16))
            if flags & V.DESC_F_INDIRECT:
                if in_indirect:
                    raise BadRing("nested indirect descriptor")
                if not self.features & V.bit(V.F_INDIRECT_DESC):
                    raise BadRing("indirect descriptor not negotiated")
                if length == 0 or length % V.DESC_SIZE or flags & V.DESC_F_NEXT:
                    raise BadRing(f"bad indirect descriptor len {length} flags {flags}")
                table, tnum, idx, count, in_indirect = (
                    self._hva(addr, length), length // V.DESC_SIZE, 0, 0, True)
                continue
            writable = bool(flags & V.DESC_F_WRITE)
            if seen_write and not writable:
                raise BadRing("readable descriptor after a writable one")
            seen_write |= writable
            out.append((self._hva(addr, length), length, writable))
            if not flags & V.DESC_F_NEXT:
                return out
            if nxt >= tnum:
                raise BadRing(f"next {nxt} >= {tnum}")
            idx = nxt

    def _serve(self, bufs):
        """Execute one virtio-blk request; returns the used length."""
        rd = b"".join(self._rd(h, n) for h, n, w in bufs if not w)
        wbufs = [(h, n) for h, n, w in bufs if w]
        wlen = sum(n for _h, n in wbufs)
        if len(rd) < V.OUTHDR.size or wlen < 1:
            return 0                                  # no room for a status: drop it
        rtype, _prio, sector = V.OUTHDR.unpack_from(rd)
        payload = rd[int(V.OUTHDR.size):]
        din = wlen - 1
        st, data = V.S_OK, b""
        fd, cap = self.backend_fd, self.capacity
        dirty = 0                                     # bytes of the buffers we may have written
        if rtype == V.T_IN:
            if din % V.SECTOR or payload or sector + din // V.SECTOR > cap:
                st = V.S_IOERR
            else:
                data, dirty = os.pread(fd, din, sector * V.SECTOR), din
                if len(data) != din:                  # short read (backend shrank): IOERR
                    st = V.S_IOERR
        elif rtype == V.T_OUT:
            if self.readonly or din or len(payload) % V.SECTOR or \
                    sector + len(payload) // V.SECTOR > cap:
                st = V.S_IOERR
            else:
                os.pwrite(fd, payload, sector * V.SECTOR)
        elif rtype == V.T_FLUSH:
            os.fsync(fd)
        elif rtype == V.T_GET_ID:
            data = self.serial[:min(din, V.ID_BYTES)]
            dirty = len(data)
        elif rtype in (V.T_DISCARD, V.T_WRITE_ZEROES):
            if self.readonly or len(payload) == 0 or len(payload) % V.DWZ_SEG.size:
                st = V.S_IOERR
            else:
                for i in range(0, len(payload), V.DWZ_SEG.size):
                    s, n, _f = V.DWZ_SEG.unpack_from(payload, i)
                    if s + n > cap:
                        st = V.S_IOERR
                        break
                    os.pwrite(fd, bytes(n * V.SECTOR), s * V.SECTOR)
        else:
            st = V.S_UNSUPP
        # data (a failed read's too, as far as it got), then the status in the last byte
        image = data.ljust(din, b"\0") if st == V.S_OK else data
        pos = 0
        for h, n in wbufs:
            if pos < len(image):
                self._wr(h, image[pos:pos + n])
            self._log_write(h, min(n, max(0, dirty - pos)))
            pos += n
        h, n = wbufs[-1]
        self._wr(h + n - 1, bytes([st]))
        self._log_write(h + n - 1, 1)
        return wlen if st == V.S_OK else 1
