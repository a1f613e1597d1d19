# SPDX-License-Identifier: GPL-2.0-or-later
"""`selftest`: prove a freshly loaded module moves data correctly, without a VM."""

import errno
import hashlib
import os
import random

from . import access, bufferedqd, busypoll, devstats, dirtylog, limits, serial, slowops, topology, tracepoints
from . import virtio as V
from .abi import MAX_BUSYLOOP_US
from .backend import open_backend
from .blkops import dwz_req, read_data, read_req, run_many, simple_req, write_req
from .driver import RingError, Session, WaitTimeout
from .lifecycle import Lifecycle

BLK_BITS = (1 << 24) - 1          # device-specific feature bits: take all offered
MODES = (("plain", 0),
         ("indirect+event_idx", V.bit(V.F_INDIRECT_DESC) | V.bit(V.F_EVENT_IDX)))
SHAPES = ((1, 1), (8, 1), (8, 2), (16, 3), (128, 1), (64, 4), (3, 3), (256, 2))


def _sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def _pread_outside(fd, length, offset):
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    out = b""
    while len(out) < length:
        chunk = os.pread(fd, length - len(out), offset + len(out))
        if not chunk:
            break
        out += chunk
    return out


class Selftest:
    def __init__(self, args, open_device, rep, abi):
        self.args = args
        self.open_device = open_device
        self.rep = rep
        self.abi = abi
        self.rnd = random.Random(args.seed)
        self.timeout = args.timeout

    # helpers ------------------------------------------------------------------
    def _statuses(self, reqs):
        return sorted({V.STATUS_NAMES.get(r.status, hex(r.status)) for r in reqs})

    def _one(self, s, req, q=0):
        s.run(q, [req], self.timeout)
        return req

    def _expect_status(self, s, name, req, allowed):
        try:
            self._one(s, req)
        except (RingError, WaitTimeout) as e:
            self.rep.check(name, False, str(e))
            return None
        got = V.STATUS_NAMES.get(req.status, hex(req.status))
        want = "/".join(V.STATUS_NAMES[a] for a in allowed)
        self.rep.check(name, req.status in allowed, f"status {got} (want {want})")
        return req

    # the run ------------------------------------------------------------------
    def run(self):
        rep, args = self.rep, self.args
        path = args.file or args.blockdev
        fd, size, isblk = open_backend(path, args.size if args.file else None, direct=args.direct)
        self.fd, self.cap = fd, size // V.SECTOR
        # the outside view: a separate buffered descriptor (pread cannot use O_DIRECT buffers)
        self.vfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        rep.note("backend", f"{path} ({'block device' if isblk else 'file'}, {size} bytes, "
                            f"{self.cap} sectors{', O_DIRECT' if args.direct else ''})")
        try:
            if not self._probe():
                return
            for mode, bits in MODES:
                self._mode(mode, bits)
            self._readonly(path)
            lc = Lifecycle(self.open_device, rep, self.abi, path, fd, self.cap, isblk, args.direct,
                           self.rnd, self.timeout, args.mem, self.qsize)
            lc.run(args.close_races)
            serial.run(lc)
            topology.run(lc)
            devstats.run(lc)
            busypoll.run(lc)
            slowops.run(lc)
            bufferedqd.run(lc)
            tracepoints.run(lc)
            access.run(lc, args.nopunch_file)
            dirtylog.run(lc)
            if args.limits:
                limits.run(lc)
            self._reset_owner()
        finally:
            os.close(fd)
            os.close(self.vfd)

    def _probe(self):
        a, rep = self.abi, self.rep
        try:
            dev = self.open_device()
        except OSError as e:
            rep.check("open device", False, f"{e} (is the module loaded?)")
            return False
        try:
            info = dev.get_info()
        except OSError as e:
            rep.check("VHOST_BLK_GET_INFO before SET_OWNER", False, str(e))
            dev.close()
            return False
        self.info = info
        rep.check("VHOST_BLK_GET_INFO before SET_OWNER",
                  info["abi_version"] == a.VHOST_BLK_ABI_VERSION,
                  f"abi_version {info['abi_version']} (header {a.VHOST_BLK_ABI_VERSION}), "
                  f"max_queues {info['max_queues']}, max_queue_size {info['max_queue_size']}, "
                  f"seg_max {info['seg_max']}, features {info['features']:#x}")
        rep.check("no backend before SET_BACKEND",
                  not info["flags"] & a.VHOST_BLK_INFO_F_BACKEND and info["capacity"] == 0,
                  f"flags {info['flags']:#x} capacity {info['capacity']}")
        owner = self._try_owner(dev)
        feats = dev.get_features() if owner else 0
        if owner:
            self._busyloop_limits(dev)
        dev.close()
        rep.note("features offered", " ".join(V.feature_names(feats)))
        rep.check("GET_INFO.features == VHOST_GET_FEATURES", info["features"] == feats,
                  f"{info['features']:#x} vs {feats:#x}")
        rep.check("VERSION_1 offered", feats & V.bit(V.F_VERSION_1))
        ok = rep.check("queues supported", self.args.queues <= info["max_queues"],
                       f"want {self.args.queues}, max {info['max_queues']}")
        self.qsize = min(self.args.queue_size, info["max_queue_size"] or self.args.queue_size)
        return ok and feats & V.bit(V.F_VERSION_1)

    def _busyloop_limits(self, dev):
        """The busy-loop timeout round-trips, and a too long one is refused with EINVAL."""
        try:
            dev.set_vring_busyloop_timeout(0, MAX_BUSYLOOP_US)
            got = dev.get_vring_busyloop_timeout(0)
            self.rep.check("VHOST_SET/GET_VRING_BUSYLOOP_TIMEOUT", got == MAX_BUSYLOOP_US,
                           f"got {got} (set {MAX_BUSYLOOP_US})")
        except OSError as e:
            self.rep.check("VHOST_SET/GET_VRING_BUSYLOOP_TIMEOUT", False, str(e))
            return
        name = f"busy-loop timeout above {MAX_BUSYLOOP_US} us refused"
        try:
            dev.set_vring_busyloop_timeout(0, 1 << 31)
            self.rep.check(name, False, "accepted")
        except OSError as e:
            self.rep.check(name, e.errno == errno.EINVAL, str(e))

    def _try_owner(self, dev):
        try:
            dev.set_owner()
            return True
        except OSError as e:
            self.rep.check("VHOST_SET_OWNER", False, str(e))
            return False

    def _session(self, bits, backend=None):
        return Session(self.open_device, self.args.mem << 20, self.args.queues, self.qsize,
                       want=BLK_BITS | bits, backend=backend, busyloop_us=self.args.busyloop_us)

    def _mode(self, mode, bits):
        a, rep = self.abi, self.rep
        s = self._session(bits, backend=(self.fd, 0))
        try:
            try:
                s.start()
            except OSError as e:
                rep.check(f"[{mode}] setup + SET_BACKEND", False, str(e))
                return
            rep.check(f"[{mode}] setup + SET_BACKEND", True,
                      f"negotiated {' '.join(V.feature_names(s.features))}")
            if self.args.busyloop_us is not None:
                got = [s.dev.get_vring_busyloop_timeout(q) for q in range(len(s.vqs))]
                rep.check(f"[{mode}] busy-loop timeout on every queue",
                          got == [self.args.busyloop_us] * len(s.vqs), f"{got} us")
            if bits & ~s.features:
                rep.skip(f"[{mode}] features", "device did not offer "
                         + " ".join(V.feature_names(bits & ~s.features)))
            info = s.dev.get_info()
            rep.check(f"[{mode}] GET_INFO after SET_BACKEND",
                      info["flags"] & a.VHOST_BLK_INFO_F_BACKEND and info["capacity"] == self.cap,
                      f"flags {info['flags']:#x} capacity {info['capacity']} (want {self.cap})")
            self.dinfo = info
            if self.args.direct:
                rep.check(f"[{mode}] GET_INFO reports DIRECT",
                          info["flags"] & a.VHOST_BLK_INFO_F_DIRECT, f"flags {info['flags']:#x}")
            try:
                self._data(s, mode)
                self._get_id(s, mode)
                if mode == "plain":
                    self._dwz(s, mode)
                    self._errors(s, mode)
                for q, vq in enumerate(s.vqs):
                    s.reset_scratch()
                    base = s.dev.get_vring_base(q)
                    rep.check(f"[{mode}] GET_VRING_BASE q{q}", base == vq.avail_idx,
                              f"{base} (driver published {vq.avail_idx})")
            except (RingError, WaitTimeout) as e:
                rep.check(f"[{mode}] I/O", False, str(e))
        finally:
            s.close()

    def _data(self, s, mode):
        rep, nq = self.rep, self.args.queues
        per_q = min(self.cap // nq, 2048 if mode == "plain" else 1024)
        per_q -= per_q % 8
        if per_q < 8:
            rep.check(f"[{mode}] backend large enough", False, f"{self.cap} sectors")
            return
        expected, writes = {}, {}
        for q in range(nq):
            base, cur, chunks, reqs = q * per_q, 0, [], []
            while cur < per_q:
                nsect, nsegs = self.rnd.choice(SHAPES)
                nsect = min(nsect, per_q - cur)
                data = self.rnd.randbytes(nsect * V.SECTOR)
                reqs.append(write_req(s, base + cur, data, nsegs))
                chunks.append(data)
                cur += nsect
            expected[q] = (base, b"".join(chunks))
            writes[q] = reqs
        pattern = (lambda i: i % 2 == 0) if s.vqs[0].indirect else None
        done = run_many(s, writes, self.timeout, pattern)
        st = self._statuses(done)
        rep.check(f"[{mode}] write patterns on {nq} queue(s)", st == ["OK"],
                  f"{len(done)} requests, {per_q * nq * V.SECTOR} bytes, status {st}")
        badlen = [r.used_len for r in done if r.used_len != 1]
        rep.check(f"[{mode}] used.len of writes == 1", not badlen,
                  f"{len(badlen)} wrong, e.g. {badlen[:3]}" if badlen else "")
        s.reset_scratch()
        if s.features & V.bit(V.BLK_F_FLUSH):
            flushes = {q: [simple_req(s, V.T_FLUSH)] for q in range(nq)}
            done = run_many(s, flushes, self.timeout)
            rep.check(f"[{mode}] FLUSH on every queue", self._statuses(done) == ["OK"],
                      f"status {self._statuses(done)}")
        else:
            rep.skip(f"[{mode}] FLUSH", "VIRTIO_BLK_F_FLUSH not offered")
        s.reset_scratch()
        # read every region back through a different queue, with other shapes
        reads, order = {q: [] for q in range(nq)}, []
        for q in range(nq):
            base, data = expected[q]
            rq, cur = (q + 1) % nq, 0
            while cur < per_q:
                nsect = min(self.rnd.choice((8, 16, 32, 5)), per_q - cur)
                r = read_req(s, base + cur, nsect, self.rnd.choice((1, 2)))
                reads[rq].append(r)
                order.append((q, r))
                cur += nsect
        done = run_many(s, reads, self.timeout, (lambda i: i % 3 != 0) if s.vqs[0].indirect
                        else None)
        st = self._statuses(done)
        badlen = [r for r in done if r.used_len != r.data_len() + 1]
        rep.check(f"[{mode}] used.len of reads == data + 1", not badlen,
                  f"{len(badlen)} wrong, e.g. {[(r.used_len, r.data_len()) for r in badlen[:3]]}"
                  if badlen else "")
        for q in range(nq):
            got = b"".join(read_data(s, r) for qq, r in order if qq == q)
            base, data = expected[q]
            rep.check(f"[{mode}] read back q{q} region via q{(q + 1) % nq}",
                      st == ["OK"] and got == data,
                      f"status {st} sha256 {_sha(got)} vs written {_sha(data)}")
            outside = _pread_outside(self.vfd, len(data), base * V.SECTOR)
            diff = next((i for i in range(len(data)) if outside[i:i + 1] != data[i:i + 1]),
                        None) if outside != data else None
            rep.check(f"[{mode}] backing store has q{q} data (pread)", outside == data,
                      f"{len(data)} bytes" + (f", first difference at byte {diff}"
                                              if diff is not None else ""))
        self.expected = expected
        s.reset_scratch()

    def _get_id(self, s, mode):
        r = simple_req(s, V.T_GET_ID, 0, V.ID_BYTES)
        if self._expect_status(s, f"[{mode}] GET_ID", r, (V.S_OK,)) is not None:
            ident = read_data(s, r).rstrip(b"\0")
            self.rep.note(f"[{mode}] GET_ID", repr(ident.decode("ascii", "replace")))
            self.rep.check(f"[{mode}] GET_ID used.len", r.used_len == V.ID_BYTES + 1,
                           f"{r.used_len}")
        s.reset_scratch()

    def _check_zero(self, s, name, sector, nsect, neighbours):
        r = read_req(s, sector, nsect)
        self._one(s, r)
        got = read_data(s, r)
        outside = _pread_outside(self.vfd, nsect * V.SECTOR, sector * V.SECTOR)
        zero = bytes(nsect * V.SECTOR)
        self.rep.check(f"{name} reads back zeros", r.status == V.S_OK and got == zero
                       and outside == zero,
                       f"device {'zero' if got == zero else 'NOT zero'}, backing "
                       f"{'zero' if outside == zero else 'NOT zero'}")
        for nsec, data in neighbours:
            outside = _pread_outside(self.vfd, len(data), nsec * V.SECTOR)
            self.rep.check(f"{name} leaves sector {nsec} alone", outside == data)

    def _dwz(self, s, mode):
        a, rep = self.abi, self.rep
        base, data = self.expected[0]
        if len(data) < 64 * V.SECTOR:
            rep.skip(f"[{mode}] DISCARD/WRITE_ZEROES", "region too small")
            return

        def sect(i):
            return base + i, data[i * V.SECTOR:(i + 1) * V.SECTOR]
        cases = ((V.T_DISCARD, a.VHOST_BLK_INFO_F_DISCARD, V.BLK_F_DISCARD, 8, 16, False),
                 (V.T_WRITE_ZEROES, a.VHOST_BLK_INFO_F_WRITE_ZEROES, V.BLK_F_WRITE_ZEROES,
                  32, 8, False),
                 (V.T_WRITE_ZEROES, a.VHOST_BLK_INFO_F_WRITE_ZEROES, V.BLK_F_WRITE_ZEROES,
                  48, 8, True))
        for rtype, iflag, fbit, off, n, unmap in cases:
            name = f"[{mode}] {V.TYPE_NAMES[rtype]}{' UNMAP' if unmap else ''}"
            if not self.dinfo["flags"] & iflag:
                rep.skip(name, "module does not report it (GET_INFO.flags)")
                r = dwz_req(s, rtype, [(base + off, n)])
                self._expect_status(s, f"{name} unreported -> UNSUPP", r,
                                    (V.S_UNSUPP, V.S_IOERR))
                continue
            if not s.features & V.bit(fbit):
                rep.check(f"{name} feature bit offered", False,
                          "GET_INFO reports it but VIRTIO_BLK_F bit is not offered")
            r = dwz_req(s, rtype, [(base + off, n)], unmap)
            if self._expect_status(s, name, r, (V.S_OK,)) is not None:
                self._check_zero(s, name, base + off, n, [sect(off - 1), sect(off + n)])
            s.reset_scratch()
        if self.dinfo["flags"] & a.VHOST_BLK_INFO_F_WRITE_ZEROES:
            r = dwz_req(s, V.T_WRITE_ZEROES, [(self.cap - 4, 8)])
            self._expect_status(s, f"[{mode}] WRITE_ZEROES past the end -> IOERR", r,
                                (V.S_IOERR,))
        s.reset_scratch()

    def _errors(self, s, mode):
        cap = self.cap
        head = _pread_outside(self.vfd, 4096, 0)
        self._expect_status(s, f"[{mode}] read at capacity -> IOERR", read_req(s, cap, 1),
                            (V.S_IOERR,))
        self._expect_status(s, f"[{mode}] read across the end -> IOERR",
                            read_req(s, cap - 1, 2), (V.S_IOERR,))
        self._expect_status(s, f"[{mode}] write at capacity -> IOERR",
                            write_req(s, cap, bytes(V.SECTOR)), (V.S_IOERR,))
        self._expect_status(s, f"[{mode}] write at sector 2^55 (offset wraps) -> IOERR",
                            write_req(s, 1 << 55, b"\x5a" * 4096), (V.S_IOERR,))
        self._expect_status(s, f"[{mode}] read at sector 2^64-1 -> IOERR",
                            read_req(s, (1 << 64) - 1, 1), (V.S_IOERR,))
        self.rep.check(f"[{mode}] out-of-range writes left sector 0 alone",
                       _pread_outside(self.vfd, 4096, 0) == head)
        for t in (3, 0xFF, 0x7FFFFFFF, 0x80000001):
            self._expect_status(s, f"[{mode}] request type {t:#x} -> UNSUPP",
                                simple_req(s, t, 0, 512), (V.S_UNSUPP,))
        s.reset_scratch()

    def _readonly(self, path):
        a, rep = self.abi, self.rep
        rofd, _size, _blk = open_backend(path, readonly=True, direct=self.args.direct)
        s = self._session(0, backend=(rofd, a.VHOST_BLK_BACKEND_F_READONLY))
        try:
            dev = self.open_device()
            try:
                dev.set_owner()
                dev.set_backend(rofd, 0)
                rep.check("read-only fd without READONLY flag is refused", False,
                          "SET_BACKEND accepted an O_RDONLY fd for read-write use")
            except OSError as e:
                rep.check("read-only fd without READONLY flag is refused", True, str(e))
            finally:
                dev.close()
            s.start()
            info = s.dev.get_info()
            rep.check("[readonly] GET_INFO reports READONLY",
                      info["flags"] & a.VHOST_BLK_INFO_F_READONLY, f"flags {info['flags']:#x}")
            rep.check("[readonly] VIRTIO_BLK_F_RO offered", s.features & V.bit(V.BLK_F_RO),
                      " ".join(V.feature_names(s.offered)))
            before = _pread_outside(self.vfd, 64 * 1024, 0)
            self._expect_status(s, "[readonly] write refused", write_req(s, 0, b"\x11" * 4096),
                                (V.S_IOERR,))
            self._expect_status(s, "[readonly] DISCARD refused",
                                dwz_req(s, V.T_DISCARD, [(8, 8)]), (V.S_IOERR, V.S_UNSUPP))
            self._expect_status(s, "[readonly] WRITE_ZEROES refused",
                                dwz_req(s, V.T_WRITE_ZEROES, [(16, 8)]),
                                (V.S_IOERR, V.S_UNSUPP))
            r = self._expect_status(s, "[readonly] read allowed", read_req(s, 0, 8), (V.S_OK,))
            if r is not None:
                rep.check("[readonly] read returns the backing data",
                          read_data(s, r) == before[:4096])
            rep.check("[readonly] backing store unchanged",
                      _pread_outside(self.vfd, 64 * 1024, 0) == before)
            s.set_backend(-1)
            info = s.dev.get_info()
            rep.check("detach (fd -1) clears BACKEND", not info["flags"]
                      & a.VHOST_BLK_INFO_F_BACKEND, f"flags {info['flags']:#x} "
                      f"capacity {info['capacity']}")
        except (OSError, RingError, WaitTimeout) as e:
            rep.check("[readonly] phase", False, str(e))
        finally:
            s.close()
            os.close(rofd)

    def _reset_owner(self):
        try:
            dev = self.open_device()
        except OSError as e:
            self.rep.check("RESET_OWNER", False, str(e))
            return
        try:
            dev.set_owner()
            dev.reset_owner()
            dev.set_owner()
            self.rep.check("SET_OWNER / RESET_OWNER / SET_OWNER", True)
        except OSError as e:
            self.rep.check("SET_OWNER / RESET_OWNER / SET_OWNER", False, str(e))
        finally:
            dev.close()
