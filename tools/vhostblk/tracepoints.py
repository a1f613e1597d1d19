# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of the module's tracepoints (vhost_blk:vhost_blk_submit / vhost_blk_complete).

A private tracefs instance (its own buffer: the global trace is left alone) records the events
of one device while it serves a known set of requests: one submit and one complete per request,
naming the owner, the device id and the queue, with the request type and the status.
"""

import os

from . import virtio as V
from .blkops import read_req, simple_req, write_req
from .devstats import fdinfo
from .driver import RingError, WaitTimeout

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _tracefs():
    for t in TRACEFS:
        if os.path.exists(f"{t}/instances"):
            return t
    return None


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def run(lc):
    rep = lc.rep
    name = "[trace] submit and complete events for every request"
    dev = lc.open_device()
    try:
        in_kernel = getattr(dev, "IN_KERNEL", False)
    finally:
        dev.close()
    root = _tracefs()
    if not in_kernel or root is None:
        rep.skip(name, "the fake device has no tracepoints" if not in_kernel
                 else f"tracefs not mounted or not readable by uid {os.getuid()}")
        return
    if not rep.check("[trace] events/vhost_blk present", os.path.isdir(f"{root}/events/vhost_blk"),
                     f"{root}/events/vhost_blk"):
        return
    inst = f"{root}/instances/vhostblk-selftest-{os.getpid()}"
    os.mkdir(inst)
    try:
        s = lc.session()
        try:
            info = fdinfo(s.dev)
            _write(f"{inst}/events/vhost_blk/enable", "1")
            reqs = [write_req(s, 0, bytes(4096)), read_req(s, 0, 8), simple_req(s, V.T_FLUSH),
                    read_req(s, lc.cap, 1)]
            s.run(0, reqs, timeout=lc.timeout)
            _write(f"{inst}/events/vhost_blk/enable", "0")
        finally:
            s.close()
        with open(f"{inst}/trace") as f:
            mine = f"owner={info['vhost-blk-owner']} dev={info['vhost-blk-id']} "
            lines = [ln for ln in f if mine in ln]
        sub = [ln for ln in lines if "vhost_blk_submit:" in ln]
        com = [ln for ln in lines if "vhost_blk_complete:" in ln]
        types = sorted(ln.split("type=")[1].split()[0] for ln in sub)
        statuses = sorted(ln.split("status=")[1].split()[0] for ln in com)
        rep.check(name, len(sub) == len(reqs) and len(com) == len(reqs)
                  and types == ["flush", "in", "in", "out"] and statuses == ["ioerr", "ok", "ok", "ok"],
                  f"{len(sub)} submits {types}, {len(com)} completes {statuses} for {len(reqs)} requests")
    except (OSError, RingError, WaitTimeout) as e:
        rep.check(name, False, str(e))
    finally:
        os.rmdir(inst)
