# SPDX-License-Identifier: GPL-2.0-or-later
"""Fuzz case generators: valid, malformed and ring-breaking descriptor chains.

Each generator writes its descriptors through a BatchBuilder and returns a
Case. ``expect`` is the set of acceptable outcomes (None: anything but a hang
or a kernel splat). Outcomes: OK, IOERR, UNSUPP, status-0xNN, no-status (used
element without a status byte written), ring-error (error eventfd).
"""

from . import virtio as V

R, W, N, IND = 0, V.DESC_F_WRITE, V.DESC_F_NEXT, V.DESC_F_INDIRECT
SENTINEL = 0xEE
ERRS = frozenset({"IOERR", "UNSUPP", "ring-error", "no-status"})
BROKEN = frozenset({"ring-error", "IOERR", "no-status"})


class OutOfDescriptors(Exception):
    pass


class Case:
    __slots__ = ("kind", "head", "expect", "status_gpa", "ro_status", "outcome", "used_len",
                 "data_len", "breaking", "detail")

    def __init__(self, kind, head, expect, status_gpa=None, ro_status=False, data_len=None,
                 breaking=False):
        self.kind = kind
        self.head = head
        self.expect = expect
        self.status_gpa = status_gpa
        self.ro_status = ro_status
        self.data_len = data_len
        self.breaking = breaking
        self.outcome = None
        self.used_len = None
        self.detail = ""


class BatchBuilder:
    """Hands out descriptor indices and guest memory for one batch of cases."""

    def __init__(self, sess, vq, rnd, data_pool, pool_size, cap, indirect_ok):
        self.s, self.vq, self.rnd = sess, vq, rnd
        self.mem = sess.mem
        self.pool, self.pool_size = data_pool, pool_size
        self.cap = cap
        self.indirect_ok = indirect_ok
        self.next_desc = 0
        self.limit = vq.num          # lowered while filling, so a breaking case still fits

    def descs(self, k):
        if self.next_desc + k > self.limit:
            raise OutOfDescriptors()
        out = list(range(self.next_desc, self.next_desc + k))
        self.next_desc += k
        return out

    def hdr(self, rtype, sector, ioprio=0):
        g = self.mem.alloc(16, 8)
        V.OUTHDR.pack_into(self.mem.mm, self.mem.off(g), rtype & 0xFFFFFFFF, ioprio,
                           sector & 0xFFFFFFFFFFFFFFFF)
        return g

    def status(self):
        g = self.mem.alloc(1, 1)
        self.mem.mm[self.mem.off(g)] = SENTINEL
        return g

    def data(self, n):
        """A buffer of n bytes inside the shared data pool (contents do not matter)."""
        n = min(n, self.pool_size)
        off = self.rnd.randrange(0, (self.pool_size - n) // 512 + 1) * 512
        return self.pool + off

    def chain(self, parts):
        """Write [(addr, len, flags)] as a NEXT-linked chain; returns the head."""
        idx = self.descs(len(parts))
        last = len(parts) - 1
        for i, (a, n, f) in enumerate(parts):
            self.vq.write_desc(idx[i], a, n, f | (N if i < last else 0),
                               idx[i + 1] if i < last else 0)
        return idx[0]

    def table(self, parts, link=True):
        """Write an indirect table in scratch memory; returns (gpa, byte length)."""
        g = self.mem.alloc(max(16, 16 * len(parts)), 16)
        off = self.mem.off(g)
        last = len(parts) - 1
        for i, (a, n, f) in enumerate(parts):
            nf = f | (N if link and i < last else 0)
            V.DESC.pack_into(self.mem.mm, off + 16 * i, a & (2**64 - 1), n & 0xFFFFFFFF,
                             nf & 0xFFFF, (i + 1) if link and i < last else 0)
        return g, 16 * len(parts)

    def maybe_indirect(self, parts):
        if self.indirect_ok and len(parts) > 1 and self.rnd.random() < 0.3:
            g, n = self.table(parts)
            return self.chain([(g, n, IND)])
        return self.chain(parts)

    # request helpers ----------------------------------------------------------
    def sectors(self, maxn=16):
        n = self.rnd.randint(1, maxn)
        return self.rnd.randrange(0, self.cap - n + 1), n

    def segs(self, nbytes, flags):
        parts, left = [], nbytes
        while left > 0:
            n = min(left, self.rnd.choice((512, 1024, 4096, 8192)))
            parts.append((self.data(n), n, flags))
            left -= n
        return parts


# --- valid requests ---------------------------------------------------------
def valid_read(b):
    sec, n = b.sectors()
    st = b.status()
    head = b.maybe_indirect([(b.hdr(V.T_IN, sec), 16, R)] + b.segs(n * 512, W)
                            + [(st, 1, W)])
    c = Case("valid-read", head, {"OK"}, st, data_len=n * 512 + 1)
    c.detail = f"sector {sec} sectors {n}"
    return c


def valid_write(b):
    sec, n = b.sectors()
    st = b.status()
    head = b.maybe_indirect([(b.hdr(V.T_OUT, sec), 16, R)] + b.segs(n * 512, R)
                            + [(st, 1, W)])
    c = Case("valid-write", head, {"OK"}, st, data_len=1)
    c.detail = f"sector {sec} sectors {n}"
    return c


def valid_flush(b):
    st = b.status()
    return Case("valid-flush", b.chain([(b.hdr(V.T_FLUSH, 0), 16, R), (st, 1, W)]),
                {"OK"}, st, data_len=1)


def valid_get_id(b):
    st = b.status()
    head = b.chain([(b.hdr(V.T_GET_ID, 0), 16, R), (b.data(20), 20, W), (st, 1, W)])
    return Case("valid-get-id", head, {"OK"}, st, data_len=21)


def valid_split_header(b):
    """VERSION_1 implies ANY_LAYOUT: the header may span descriptors."""
    sec, n = b.sectors(8)
    h = b.hdr(V.T_IN, sec)
    cut = b.rnd.randint(1, 15)
    st = b.status()
    head = b.chain([(h, cut, R), (h + cut, 16 - cut, R)] + b.segs(n * 512, W) + [(st, 1, W)])
    return Case("valid-split-header", head, {"OK"}, st, data_len=n * 512 + 1)


def valid_status_in_data(b):
    """Last data byte and the status share one writable descriptor."""
    sec, n = b.sectors(8)
    buf = b.mem.alloc(n * 512 + 1, 512)
    b.mem.mm[b.mem.off(buf) + n * 512] = SENTINEL
    head = b.chain([(b.hdr(V.T_IN, sec), 16, R), (buf, n * 512 + 1, W)])
    return Case("valid-status-in-data", head, {"OK"}, buf + n * 512, data_len=n * 512 + 1)


# --- malformed requests (the ring stays usable) -----------------------------
def bad_type(b):
    t = b.rnd.choice((2, 3, 5, 6, 7, 9, 12, 15, 16, 0xFF, 0x100, 0x7FFFFFFF,
                      0x80000000, 0xFFFFFFFF, b.rnd.randrange(16, 2**32)))
    st = b.status()
    parts = [(b.hdr(t, b.rnd.randrange(0, b.cap)), 16, R)]
    if b.rnd.random() < 0.5:
        parts.append((b.data(512), 512, b.rnd.choice((R, W))))
    return Case("bad-type", b.chain(parts + [(st, 1, W)]), {"UNSUPP"}, st)


def out_of_range(b):
    rtype = b.rnd.choice((V.T_IN, V.T_OUT))
    n = b.rnd.randint(1, 8)
    sec = b.rnd.choice((b.cap, b.cap - n + b.rnd.randint(1, n), b.cap + 1000, 2**55,
                        2**63, 2**64 - 1, 2**64 - b.rnd.randint(1, n), 2**54 + b.rnd.randrange(1 << 20)))
    st = b.status()
    d = W if rtype == V.T_IN else R
    head = b.chain([(b.hdr(rtype, sec), 16, R)] + b.segs(n * 512, d) + [(st, 1, W)])
    return Case("out-of-range", head, {"IOERR"}, st)


def bad_data_len(b):
    rtype = b.rnd.choice((V.T_IN, V.T_OUT))
    n = b.rnd.choice((1, 100, 511, 513, 1000, 4095, 4097))
    st = b.status()
    d = W if rtype == V.T_IN else R
    head = b.chain([(b.hdr(rtype, 0), 16, R), (b.data(n), n, d), (st, 1, W)])
    return Case("bad-data-len", head, ERRS, st)


def short_header(b):
    n = b.rnd.randint(0, 15)
    st = b.status()
    parts = [(b.hdr(V.T_IN, 0), n, R)] if n else []
    if b.rnd.random() < 0.5:
        parts.append((b.data(512), 512, W))
    return Case("short-header", b.chain(parts + [(st, 1, W)]), ERRS, st)


def missing_status(b):
    rtype = b.rnd.choice((V.T_OUT, V.T_FLUSH, V.T_IN))
    parts = [(b.hdr(rtype, 0), 16, R)]
    if rtype == V.T_OUT:
        parts.append((b.data(512), 512, R))
    return Case("missing-status", b.chain(parts), {"no-status", "ring-error"}, breaking=True)


def readonly_status(b):
    rtype = b.rnd.choice((V.T_OUT, V.T_FLUSH, V.T_GET_ID))
    st = b.status()
    parts = [(b.hdr(rtype, 0), 16, R)]
    if rtype == V.T_OUT:
        parts.append((b.data(512), 512, R))
    return Case("readonly-status", b.chain(parts + [(st, 1, R)]), {"no-status", "ring-error"},
                st, ro_status=True, breaking=True)


def wrong_direction(b):
    st = b.status()
    if b.rnd.random() < 0.5:   # OUT whose data is device-writable
        head = b.chain([(b.hdr(V.T_OUT, 0), 16, R), (b.data(4096), 4096, W), (st, 1, W)])
        return Case("write-data-writable", head, ERRS, st)
    head = b.chain([(b.hdr(V.T_IN, 0), 16, R), (b.data(4096), 4096, R), (st, 1, W)])
    return Case("read-data-readonly", head, ERRS | {"OK"}, st)


def zero_length(b):
    st = b.status()
    rtype = b.rnd.choice((V.T_IN, V.T_OUT))
    d = W if rtype == V.T_IN else R
    parts = [(b.hdr(rtype, 8), 16, R), (b.data(512), 0, d), (b.data(512), 512, d),
             (b.data(512), 0, d), (st, 1, W)]
    return Case("zero-length-desc", b.chain(parts), ERRS | {"OK"}, st)


def dwz(b):
    t = b.rnd.choice((V.T_DISCARD, V.T_WRITE_ZEROES))
    nseg = b.rnd.choice((0, 1, 1, 2, 17, 100))
    segs = b"".join(V.DWZ_SEG.pack(b.rnd.choice((b.rnd.randrange(b.cap), b.cap, 2**63)),
                                   b.rnd.choice((1, 8, 0, 2**32 - 1)), b.rnd.choice((0, 1, 2)))
                    for _seg in range(nseg))
    extra = b.rnd.choice((0, 0, 1, 15))
    g = b.mem.alloc(len(segs) + extra + 1, 8)
    b.mem.write(g, segs + bytes(extra))
    st = b.status()
    parts = [(b.hdr(t, 0), 16, R)]
    if len(segs) + extra:
        parts.append((g, len(segs) + extra, R))
    return Case(f"{V.TYPE_NAMES[t].lower()}-fuzzed", b.chain(parts + [(st, 1, W)]),
                ERRS | {"OK"}, st)


def long_indirect(b):
    """Indirect chains longer than the ring and than seg_max."""
    if not b.indirect_ok:
        return valid_read(b)
    k = b.rnd.choice((b.vq.num + 1, 2 * b.vq.num, 300, 1030))
    st = b.status()
    parts = [(b.hdr(V.T_IN, 0), 16, R)] + [(b.data(512), 512, W)] * k + [(st, 1, W)]
    g, n = b.table(parts)
    return Case("long-indirect", b.chain([(g, n, IND)]), ERRS | {"OK"}, st, breaking=True)


NON_BREAKING = (
    (valid_read, 8), (valid_write, 8), (valid_flush, 2), (valid_get_id, 2),
    (valid_split_header, 2), (valid_status_in_data, 2), (bad_type, 4), (out_of_range, 4),
    (bad_data_len, 3), (short_header, 3), (wrong_direction, 3), (zero_length, 2), (dwz, 3),
)


# --- ring-breaking cases (always last in a batch) ------------------------------
def loop(b):
    i = b.descs(b.rnd.randint(1, 4))
    for k, d in enumerate(i):
        b.vq.write_desc(d, b.hdr(V.T_IN, 0) if k == 0 else b.data(512), 16 if k == 0 else 512,
                        N | (W if k else R), i[(k + 1) % len(i)])
    return Case("desc-loop", i[0], BROKEN, breaking=True)


def next_out_of_ring(b):
    (d,) = b.descs(1)
    b.vq.write_desc(d, b.hdr(V.T_IN, 0), 16, N, b.rnd.randrange(b.vq.num, 65536))
    return Case("next-out-of-ring", d, BROKEN, breaking=True)


def head_out_of_ring(b):
    return Case("head-out-of-ring", b.rnd.randrange(b.vq.num, 65536), BROKEN, breaking=True)


def addr_outside(b):
    st = b.status()
    size = b.mem.size
    addr, n = b.rnd.choice(((size, 512), (size - 256, 512), (2**64 - 256, 512),
                            (2**63, 4096), (size + 2**30, 512), (b.pool, 2**32 - 1),
                            (b.pool, size)))
    which = b.rnd.randrange(3)
    parts = [(b.hdr(V.T_IN, 0), 16, R), (b.data(512), 512, W), (st, 1, W)]
    parts[which] = (addr, n, parts[which][2])      # the piece ends outside guest RAM
    return Case("addr-outside-memory", b.chain(parts), BROKEN, st, breaking=True)


def bad_indirect(b):
    st = b.status()
    inner = [(b.hdr(V.T_IN, 0), 16, R), (b.data(512), 512, W), (st, 1, W)]
    g, n = b.table(inner)
    v = b.rnd.randrange(8)
    if v == 0:
        parts, kind = [(g, 0, IND)], "indirect-len-0"
    elif v == 1:
        parts, kind = [(g, n - b.rnd.randint(1, 15), IND)], "indirect-len-unaligned"
    elif v == 2:
        parts, kind = [(g, 2**32 - 16, IND)], "indirect-len-huge"
    elif v == 3:
        parts, kind = [(b.mem.size + 4096, 48, IND)], "indirect-addr-outside"
    elif v == 4:
        g2, n2 = b.table([(g, n, IND)])
        parts, kind = [(g2, n2, IND)], "indirect-nested"
    elif v == 5:
        parts, kind = [(g, n, IND | N)], "indirect-with-next"
    elif v == 6:
        g3, n3 = b.table(inner, link=False)
        off = b.mem.off(g3)
        V.DESC.pack_into(b.mem.mm, off, inner[0][0], 16, N, 0)    # loop to itself
        parts, kind = [(g3, n3, IND)], "indirect-loop"
    else:
        g4, _len = b.table(inner)
        off = b.mem.off(g4)
        V.DESC.pack_into(b.mem.mm, off, inner[0][0], 16, N, 200)  # next beyond table
        parts, kind = [(g4, 48, IND)], "indirect-next-outside"
    if kind == "indirect-with-next":
        head = b.chain([(g, n, IND), (b.data(16), 16, R)])
    else:
        head = b.chain(parts)
    return Case(kind, head, BROKEN, st, breaking=True)


def out_after_in(b):
    st = b.status()
    head = b.chain([(b.hdr(V.T_OUT, 0), 16, R), (b.data(512), 512, W), (b.data(512), 512, R),
                    (st, 1, W)])
    return Case("readable-after-writable", head, ERRS, st, breaking=True)


def huge_len(b):
    st = b.status()
    head = b.chain([(b.hdr(V.T_IN, 0), 16, R), (b.data(512), 2**32 - 1, W), (st, 1, W)])
    return Case("huge-length", head, BROKEN, st, breaking=True)


def garbage(b):
    """Random flags, lengths and addresses. Next pointers stay inside this case's own
    descriptors or leave the ring: pointing into another case's chain would let the
    device legitimately answer through that case's status byte."""
    k = b.rnd.randint(1, 6)
    idx = b.descs(k)
    for d in idx:
        nxt = b.rnd.choice((b.rnd.choice(idx), b.rnd.randrange(b.vq.num, 65536)))
        b.vq.write_desc(d, b.rnd.getrandbits(64) if b.rnd.random() < 0.3
                        else b.pool + b.rnd.randrange(b.pool_size),
                        b.rnd.getrandbits(32) if b.rnd.random() < 0.3 else b.rnd.randrange(64),
                        b.rnd.getrandbits(16), nxt)
    return Case("random-garbage", idx[0], None, breaking=True)


def avail_jump(b):
    return Case("avail-idx-jump", None, {"ring-error"}, breaking=True)


BREAKING = (
    (loop, 3), (next_out_of_ring, 2), (head_out_of_ring, 2), (addr_outside, 4),
    (bad_indirect, 6), (out_after_in, 2), (huge_len, 2), (garbage, 4), (avail_jump, 1),
    (missing_status, 3), (readonly_status, 3), (long_indirect, 3),
)


def weighted(table):
    out = []
    for fn, w in table:
        out += [fn] * w
    return out
