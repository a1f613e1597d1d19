# SPDX-License-Identifier: GPL-2.0-or-later
"""Building virtio-blk requests in guest memory and running batches of them."""

from . import virtio as V
from .driver import Request

PAGE = 4096


def split(n, parts):
    """Split n sectors into up to ``parts`` non-empty sector counts."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def write_req(s, sector, data, nsegs=1):
    segs, pos = [], 0
    for cnt in split(len(data) // V.SECTOR, nsegs):
        n = cnt * V.SECTOR
        g = s.mem.alloc(n, PAGE)
        s.mem.write(g, data[pos:pos + n])
        segs.append((g, n))
        pos += n
    return Request(s.mem, V.T_OUT, sector, segs, data_writable=False)


def read_req(s, sector, nsect, nsegs=1):
    segs = []
    for cnt in split(nsect, nsegs):
        n = cnt * V.SECTOR
        g = s.mem.alloc(n, PAGE)
        s.mem.fill(g, n, 0xA5)
        segs.append((g, n))
    return Request(s.mem, V.T_IN, sector, segs, data_writable=True)


def read_data(s, req):
    return b"".join(s.mem.read(g, n) for g, n in req.segs)


def simple_req(s, rtype, sector=0, in_len=0):
    """A request with an optional device-writable data buffer (GET_ID, FLUSH, ...)."""
    segs = []
    if in_len:
        g = s.mem.alloc(in_len, 8)
        s.mem.fill(g, in_len, 0)
        segs.append((g, in_len))
    return Request(s.mem, rtype, sector, segs, data_writable=True)


def dwz_req(s, rtype, ranges, unmap=False):
    """DISCARD / WRITE_ZEROES with segments [(sector, num_sectors)]."""
    payload = b"".join(V.DWZ_SEG.pack(sec, n, V.DWZ_F_UNMAP if unmap else 0)
                       for sec, n in ranges)
    g = s.mem.alloc(len(payload), 8)
    s.mem.write(g, payload)
    return Request(s.mem, rtype, 0, [(g, len(payload))], data_writable=False)


def descs_needed(vq, req, use_indirect):
    n = len(req.segs) + 2
    if vq.indirect and use_indirect is not False and n <= vq.indirect_max:
        return 1
    return n


def run_many(s, per_queue, timeout, indirect_pattern=None):
    """Run {queue: [Request]} concurrently on all queues, refilling as rings drain.

    ``indirect_pattern(i)`` picks use_indirect for the i-th request of a queue.
    """
    todo = {q: list(reqs) for q, reqs in per_queue.items()}
    counter = {q: 0 for q in todo}
    done = []
    while any(todo.values()):
        batch = []
        for q, lst in todo.items():
            vq = s.vqs[q]
            while lst:
                ui = indirect_pattern(counter[q]) if indirect_pattern else None
                if descs_needed(vq, lst[0], ui) > vq.num_free():
                    break
                r = lst.pop(0)
                s.submit(q, r, ui)
                counter[q] += 1
                batch.append(r)
            s.notify(q)
        if not batch:
            raise RuntimeError("a request needs more descriptors than the ring has")
        s.wait(batch, timeout, queues=list(todo))
        done += batch
    return done
