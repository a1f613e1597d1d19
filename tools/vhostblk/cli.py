# SPDX-License-Identifier: GPL-2.0-or-later
"""Command line: python3 -m vhostblk selftest|fuzz|racefuzz|bench."""

import argparse
import sys

from . import abi as abimod
from .backend import parse_size


def _device_factory(args, abi):
    if args.fake:
        from .fakedev import FakeVhostBlk
        return lambda: FakeVhostBlk(abi)
    from .device import VhostBlkDevice
    return lambda: VhostBlkDevice(args.device, abi)


def _common(p):
    p.add_argument("--device", default=None,
                   help="device node (default /dev/ + VHOST_BLK_DEVICE_NAME from the header)")
    p.add_argument("--fake", action="store_true",
                   help="use the in-process fake device (tests the exerciser, not the module)")
    p.add_argument("--header", default=None,
                   help="vhost_blk.h to take the ABI from (default: repo, "
                        "$VHOST_BLK_UAPI_HEADER, /usr/src/vhost-blk-*)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for any completion before failing (default 30)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def _race_ops():
    from .racefuzz import OPS
    return OPS


def _ops(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in _race_ops()]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown operation(s) {bad or text!r}; known: "
                                         + ",".join(sorted(_race_ops())))
    return names


def build_parser():
    ap = argparse.ArgumentParser(
        prog="python3 -m vhostblk",
        description="Drive /dev/vhost-blk from user space like a tiny VMM: guest RAM is an "
                    "anonymous mapping, virtqueues live in it, eventfds kick and signal.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    st = sub.add_parser("selftest", help="check a freshly loaded module end to end",
                        description="Write patterns on every queue, FLUSH, read back and "
                        "compare (also from outside with pread), GET_ID, DISCARD/WRITE_ZEROES "
                        "when reported, out-of-range and unsupported requests, read-only "
                        "backend. Exit status 0 only if every check passed. WARNING: "
                        "overwrites the start of the backing file or device.")
    g = st.add_mutually_exclusive_group(required=True)
    g.add_argument("--file", help="backing file (created/extended to --size)")
    g.add_argument("--blockdev", help="backing block device, e.g. /dev/loop0")
    st.add_argument("--queues", type=int, default=2, help="virtqueues to use (default 2)")
    st.add_argument("--size", type=parse_size, default="64M",
                    help="size of a created backing file (default 64M)")
    st.add_argument("--queue-size", type=int, default=128, help="ring entries (default 128)")
    st.add_argument("--mem", type=int, default=64, help="guest RAM in MiB (default 64)")
    st.add_argument("--direct", action="store_true",
                    help="open the backend with O_DIRECT (asynchronous I/O in the module)")
    st.add_argument("--close-races", type=int, default=50,
                    help="times to close the device with writes and flushes in flight (default 50)")
    st.add_argument("--busyloop-us", type=int, default=None,
                    help="VHOST_SET_VRING_BUSYLOOP_TIMEOUT for every queue, 0-10000 "
                         "(default: the module's busyloop_us)")
    st.add_argument("--limits", action="store_true",
                    help="also check the max_devices / max_workers limits: briefly sets them to "
                         "0 in /sys/module/vhost_blk/parameters (root; other users of the module "
                         "see the limit meanwhile)")
    st.add_argument("--nopunch-file", default=None,
                    help="a file on a filesystem that cannot punch holes (e.g. vfat): check that "
                         "DISCARD there is answered UNSUPP and then no longer offered")
    _common(st)

    fz = sub.add_parser("fuzz", help="feed malformed descriptor chains and requests",
                        description="Batches of malformed and valid requests, one kick per "
                        "batch. Ring-breaking cases end a batch; after an error eventfd the "
                        "queue is reset (GET_VRING_BASE + SET_VRING_BASE/ADDR) or the device "
                        "reopened. Fails on timeouts, unexpected results, or kernel "
                        "BUG/WARN/Oops/KASAN messages during the run.")
    fz.add_argument("--cases", type=int, default=10000, help="number of cases (default 10000)")
    fz.add_argument("--file", default=None,
                    help="backing file (default: a temporary 16 MiB file, removed afterwards)")
    fz.add_argument("--queue-size", type=int, default=1024, help="ring entries (default 1024)")
    fz.add_argument("--reopen-every", type=int, default=8,
                    help="after a ring error, reopen the device every Nth time (new features, "
                         "full teardown); otherwise stop and reset the vring (default 8, "
                         "1 = always reopen)")
    fz.add_argument("--batch", type=int, default=128,
                    help="cases per kick (default 128; 0: as many as fit in the ring)")
    fz.add_argument("--break-ratio", type=float, default=0.75,
                    help="share of batches ending with a ring-breaking case (default 0.75)")
    fz.add_argument("--direct", action="store_true", help="open the backend with O_DIRECT")
    fz.add_argument("--no-kmsg", action="store_true", help="do not check the kernel log")
    fz.add_argument("--progress", type=float, default=10.0,
                    help="seconds between progress lines (0: none)")
    _common(fz)

    rf = sub.add_parser("racefuzz", help="race ioctls and close against I/O on several queues",
                        description="Rounds of one device lifetime each: I/O threads on 1..--queues "
                        "queues (reads checked against the last completed write, ring resets with "
                        "requests in flight) while --threads threads issue SET_MEM_TABLE, "
                        "SET_BACKEND swaps and detaches, GET_VRING_BASE + SET_VRING_NUM/BASE/ADDR, "
                        "SET_VRING_KICK/CALL, busy-loop changes, dirty logging and ioctls that must "
                        "fail; then the device is closed under them (now and then after "
                        "VHOST_RESET_OWNER). Fails on an undocumented errno, a request not "
                        "completed within --timeout, a ring error, wrong status or data, a thread "
                        "stuck in the module, or BUG/WARNING/KASAN/lockdep lines in the kernel log.")
    rf.add_argument("--rounds", type=int, default=None,
                    help="device lifetimes (default 100, no limit with --seconds)")
    rf.add_argument("--first-round", type=int, default=0,
                    help="number of the first round (with --seed: replays a reported round)")
    rf.add_argument("--seconds", type=float, default=0,
                    help="start no round after this many seconds (default 0: no limit)")
    rf.add_argument("--round-seconds", type=float, default=1.0,
                    help="longest time before the close in a round (default 1.0)")
    rf.add_argument("--queues", type=int, default=4, help="most queues per round (default 4)")
    rf.add_argument("--threads", type=int, default=2, help="control threads (default 2)")
    rf.add_argument("--ops", type=_ops, default=None,
                    help="comma-separated control operations to use (default all: "
                         + ",".join(sorted(_race_ops())) + ")")
    rf.add_argument("--reset-ratio", type=float, default=0.03,
                    help="share of I/O batches followed by a ring reset with requests in flight "
                         "(default 0.03)")
    rf.add_argument("--reset-owner-ratio", type=float, default=0.25,
                    help="share of rounds where VHOST_RESET_OWNER comes before the close, under the "
                         "running I/O (default 0.25)")
    rf.add_argument("--file", default=None,
                    help="backing file (default: a temporary 16 MiB file, removed afterwards)")
    rf.add_argument("--no-kmsg", action="store_true", help="do not check the kernel log")
    rf.add_argument("--progress", type=float, default=10.0,
                    help="seconds between progress lines (0: none)")
    _common(rf)

    be = sub.add_parser("bench", help="4k random IOPS and latency vs fio (io_uring)",
                        description="4k random read and write through /dev/vhost-blk from "
                        "this Python driver and through fio (ioengine=io_uring, direct=1, or "
                        "direct=0 with --buffered) on "
                        "the same file, same queue depth and runtime. Exit 2 if fio is "
                        "missing.")
    be.add_argument("--file", default=None,
                    help="backing file (default: a temporary file of --size, removed after)")
    be.add_argument("--size", type=parse_size, default="256M",
                    help="size of a created backing file (default 256M)")
    be.add_argument("--qd", default="1,32", help="queue depths, comma separated (default 1,32)")
    be.add_argument("--runtime", type=float, default=10.0, help="seconds per run (default 10)")
    be.add_argument("--rw", default="randread,randwrite",
                    help="workloads (default randread,randwrite)")
    be.add_argument("--busyloop-us", default="0",
                    help="busy-loop timeouts of the queue worker to measure, comma separated, "
                         "0-10000 (default 0: sleep between kicks); one vhost-blk row each")
    be.add_argument("--no-fio", action="store_true", help="only measure vhost-blk")
    be.add_argument("--buffered", action="store_true",
                    help="backing without O_DIRECT and fio with direct=0 (the page cache of the "
                         "backing is dropped before each run)")
    _common(be)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    abi = abimod.load(args.header)
    factory = _device_factory(args, abi)
    from .report import Reporter
    rep = Reporter(args.cmd, args.json)
    if args.cmd == "selftest":
        from .selftest import Selftest
        if args.queues < 1:
            print("--queues must be >= 1", file=sys.stderr)
            return 2
        Selftest(args, factory, rep, abi).run()
        return rep.finish()
    if args.cmd == "fuzz":
        from .fuzz import Fuzzer
        Fuzzer(args, factory, rep, abi).run()
        return rep.finish()
    if args.cmd == "racefuzz":
        from .racefuzz import RaceFuzzer
        if args.queues < 1 or args.queues > 8 or args.threads < 0 or (args.rounds is not None and args.rounds < 1):
            print("--queues must be 1..8, --threads >= 0, --rounds >= 1", file=sys.stderr)
            return 2
        RaceFuzzer(args, factory, rep, abi).run()
        return rep.finish()
    if args.cmd == "bench":
        from .bench import Bench
        return Bench(args, factory, rep, abi).run()
    return 2
