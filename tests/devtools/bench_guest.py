# SPDX-License-Identifier: GPL-2.0-or-later
"""``./dev bench guest``: fio in ONE L2 guest on a vhost-blk-pci disk, a vhost-user disk and QEMU's
own virtio-blk-pci disk, side by side in the same run.

One throwaway L1 gets the vhost-blk module and the patched QEMU (vmharness.l1_vhostblk), three equal
preallocated raw files, and the fio tools disk (vmharness.l2_tools). The L2 guest has three disks:

* vhost-blk-pci (cache-direct=on: the module does the I/O on an O_DIRECT file),
* vhost-user-blk-pci on vhost-blk-user (``--cache none``: the same module, the same O_DIRECT file
  I/O, reached through the vhost-user transport; guest RAM is a shared memfd), and
* virtio-blk-pci with ``-object iothread``, aio=io_uring (or native) and cache.direct=on,

each with one queue of 128. For every point (4k randread / randwrite at qd1 and qd32) the guest
runs fio on the three disks back to back (the first one rotates from point to point), and the table
prints IOPS and mean completion latency of each, the ratios vhost-blk / virtio-blk (a point where
vhost-blk is behind is marked BEHIND) and vhost-user / vhost-blk (the transport's cost; within 5%
is the target). Under TCG the numbers mostly measure emulation: the accelerators used are printed
with the table.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from vmharness import l1_vhost_user, l2, l2_fio
from vmharness.l1_vhostblk import FIRMWARE, QEMU_IN_L1, vhostblk_l1
from vmharness.l2_tools import build_tools_disk, pci_addr
from vmharness.qemu import default_accel

DISKS = {"vhost-blk": 0x04, "vhost-user": 0x06, "virtio-blk": 0x05}
POINTS = (("randread", 1), ("randread", 32), ("randwrite", 1), ("randwrite", 32))
FILES = {"vhost-blk": "/var/lib/vhost-blk/bench-vhost.raw", "vhost-user": "/var/lib/vhost-blk/bench-vu.raw",
         "virtio-blk": "/var/lib/vhost-blk/bench-virtio.raw"}
SOCKET = "/run/vhost-blk/bench.sock"
MEMORY_MIB = 768
# vhost-user within this fraction of vhost-blk-pci (issue 11): marked in the table, never asserted
TRANSPORT_TOLERANCE = 0.05


def _busyloop(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 10000:
        raise argparse.ArgumentTypeError(f"{value} is not in 0-10000")
    return value


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./dev bench guest", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--runtime", type=int, default=10, help="seconds per fio run (default 10)")
    p.add_argument("--ramp", type=int, default=2, help="ramp seconds per fio run (default 2)")
    p.add_argument("--size-mib", type=int, default=256, help="size of each backing file (default 256)")
    p.add_argument("--engine", default="libaio", choices=["libaio", "io_uring"], help="fio engine in the guest")
    p.add_argument("--aio", default="io_uring", choices=["io_uring", "native"], help="QEMU virtio-blk aio=")
    p.add_argument("--busyloop-us", type=_busyloop, default=0, metavar="0-10000",
                   help="vhost-blk queue workers busy-poll this long before sleeping (module parameter "
                        "busyloop_us in L1; default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return p.parse_args(argv)


def label(disk: str, rw: str, qd: int) -> str:
    return f"{disk}-{rw}-qd{qd}"


def plan(points=POINTS) -> list:
    """(disk, rw, qd) in run order: every disk per point, the first disk rotating."""
    order, names = [], list(DISKS)
    for i, (rw, qd) in enumerate(points):
        k = i % len(names)
        for disk in names[k:] + names[:k]:
            order.append((disk, rw, qd))
    return order


def payload(tools, args) -> str:
    lines = [tools.guest_setup()]
    for disk, slot in DISKS.items():
        var = disk.replace("-", "_").upper()
        lines.append(f'{var}=$(disk_at {slot:02x}); test -b "${var}" || '
                     f'{{ echo "NO-DISK: {disk} not at PCI slot {slot:02x}"; exit 1; }}; echo "DISK {disk} ${var}"')
    for disk, rw, qd in plan():
        var = disk.replace("-", "_").upper()
        lines.append(l2_fio.fio_sh(label(disk, rw, qd), {
            "filename": f"${var}", "rw": rw, "bs": "4k", "iodepth": qd, "ioengine": args.engine, "direct": 1,
            "size": f"{args.size_mib}M", "time_based": None, "runtime": args.runtime,
            "ramp_time": args.ramp, "randrepeat": 0, "norandommap": None}))
    return "\n".join(lines) + "\n"


def device_args(tools, args) -> list:
    return [[*FIRMWARE, "-smp", "1", "-object", "iothread,id=iot0",
             "-object", f"memory-backend-memfd,id=mem,size={MEMORY_MIB}M,share=on", "-machine", "memory-backend=mem"],
            ["-device", f"vhost-blk-pci,drive={FILES['vhost-blk']},num-queues=1,queue-size=128,cache-direct=on,"
                        f"addr={pci_addr(DISKS['vhost-blk'])}"],
            ["-chardev", f"socket,id=vu0,path={SOCKET}",
             "-device", f"vhost-user-blk-pci,chardev=vu0,num-queues=1,queue-size=128,"
                        f"addr={pci_addr(DISKS['vhost-user'])}"],
            ["-drive", f"file={FILES['virtio-blk']},format=raw,if=none,id=vb0,cache.direct=on,aio={args.aio}",
             "-device", f"virtio-blk-pci,drive=vb0,iothread=iot0,num-queues=1,queue-size=128,"
                        f"addr={pci_addr(DISKS['virtio-blk'])}"],
            tools.device_args()]


def collect(runs: dict, points=POINTS) -> list:
    """One row per point: every disk's IOPS and clat, ratios vhost-blk / virtio-blk (behind or not) and
    vhost-user / vhost-blk (within TRANSPORT_TOLERANCE or not)."""
    rows = []
    for rw, qd in points:
        direction = "read" if "read" in rw else "write"
        v, u, q = (l2_fio.point(runs[label(d, rw, qd)], direction) for d in ("vhost-blk", "vhost-user", "virtio-blk"))
        iops_ratio = v["iops"] / q["iops"] if q["iops"] else float("inf")
        clat_ratio = v["clat_us"] / q["clat_us"] if q["clat_us"] else float("inf")
        user_ratio = u["iops"] / v["iops"] if v["iops"] else float("inf")
        rows.append({"rw": rw, "qd": qd, "vhost-blk": v, "vhost-user": u, "virtio-blk": q, "iops_ratio": iops_ratio,
                     "clat_ratio": clat_ratio, "behind": iops_ratio < 1.0 or clat_ratio > 1.0,
                     "user_ratio": user_ratio, "user_within": user_ratio >= 1.0 - TRANSPORT_TOLERANCE})
    return rows


def format_table(rows: list, header: str) -> str:
    out = [header,
           f"{'point':<15} {'vhost-blk-pci':>19} {'vhost-user':>19} {'virtio-blk':>19} {'vhost/virtio':>19} "
           f"{'user/vhost':>10}",
           f"{'':<15} {'IOPS':>9} {'clat us':>9} {'IOPS':>9} {'clat us':>9} {'IOPS':>9} {'clat us':>9} "
           f"{'IOPS':>9} {'clat':>9} {'IOPS':>10}"]
    for r in rows:
        v, u, q = r["vhost-blk"], r["vhost-user"], r["virtio-blk"]
        out.append(f"{r['rw'] + ' qd' + str(r['qd']):<15} {v['iops']:>9.0f} {v['clat_us']:>9.1f} "
                   f"{u['iops']:>9.0f} {u['clat_us']:>9.1f} {q['iops']:>9.0f} {q['clat_us']:>9.1f} "
                   f"{r['iops_ratio']:>8.2f}x {r['clat_ratio']:>8.2f}x {r['user_ratio']:>9.2f}x"
                   f"  {'BEHIND' if r['behind'] else 'ahead'}")
    behind = [f"{r['rw']} qd{r['qd']}" for r in rows if r["behind"]]
    out.append(f"vhost-blk is BEHIND virtio-blk at: {', '.join(behind)}" if behind
               else "vhost-blk is ahead of virtio-blk at every point")
    off = [f"{r['rw']} qd{r['qd']}" for r in rows if not r["user_within"]]
    out.append(f"vhost-user is more than {TRANSPORT_TOLERANCE:.0%} behind vhost-blk-pci at: {', '.join(off)}" if off
               else f"vhost-user is within {TRANSPORT_TOLERANCE:.0%} of vhost-blk-pci at every point")
    return "\n".join(out)


def log(msg: str) -> None:
    print(f"[bench guest] {msg}", file=sys.stderr, flush=True)


def run(argv) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vhostblk-bench-guest-") as tmp, \
            vhostblk_l1(f"bench-guest-{os.getpid()}", tmp, log=log) as inst:
        tools = build_tools_disk(inst)
        log(f"tools disk {tools.path} ({tools.size >> 20} MiB); preallocating {len(FILES)} x {args.size_mib} MiB")
        files = " ".join(FILES.values())
        inst.run(f"mkdir -p /var/lib/vhost-blk && for f in {files}; do dd if=/dev/zero of=$f bs=1M "
                 f"count={args.size_mib} oflag=direct conv=fsync status=none; done", timeout=1200)
        inst.run(f"echo {args.busyloop_us} > /sys/module/vhost_blk/parameters/busyloop_us")
        l1_vhost_user.install(inst)
        l1_vhost_user.start(inst, "/var/tmp/bench-vu.log", SOCKET, FILES["vhost-user"], "--queues 1 --cache none")
        initrd = l2.build_initramfs(inst, payload(tools, args), name="bench-guest")
        budget = len(plan()) * (args.runtime + args.ramp) * 4 + 1500
        log(f"L2 guest running {len(plan())} fio runs of {args.runtime}+{args.ramp} s")
        l2_start = time.monotonic()
        res = l2.run_l2(inst, initrd, device_args(tools, args), timeout=budget, qemu=QEMU_IN_L1,
                        memory_mib=MEMORY_MIB, kvm_timeout=budget)
        l2_secs = time.monotonic() - l2_start
    runs = l2_fio.parse_runs(res.console)
    try:
        rows = collect(runs)
    except (KeyError, ValueError) as exc:
        print(f"benchmark incomplete ({exc}); console tail:\n" + "\n".join(res.console.splitlines()[-60:]),
              file=sys.stderr)
        return 1
    config = {"l1_accel": default_accel(), "l2_accel": res.accel, "l2_fell_back_to_tcg": res.fell_back,
              "bs": "4k", "guest_engine": args.engine, "direct": 1, "runtime_s": args.runtime,
              "ramp_s": args.ramp, "size_mib": args.size_mib,
              "vhost_blk": f"vhost-blk-pci num-queues=1 queue-size=128 cache-direct=on, "
                           f"module busyloop_us={args.busyloop_us}",
              "vhost_user": "vhost-user-blk-pci num-queues=1 queue-size=128 on vhost-blk-user --cache none",
              "virtio_blk": f"virtio-blk-pci iothread num-queues=1 queue-size=128, aio={args.aio} cache.direct=on",
              "l2_seconds": round(l2_secs), "total_seconds": round(time.monotonic() - start)}
    if args.json:
        print(json.dumps({"config": config, "points": rows}, indent=2))
    else:
        emulated = "  (TCG: the numbers mostly measure emulation)" if "tcg" in (config["l1_accel"], res.accel) else ""
        header = (f"vhost-blk-pci, vhost-user and virtio-blk-pci ({config['virtio_blk']}) in one L2 guest, 4k, "
                  f"fio {args.engine} direct=1, {args.runtime} s + {args.ramp} s ramp per run\n"
                  f"L1 accel: {config['l1_accel']}, L2 accel: {res.accel}"
                  f"{' (KVM failed, fell back to TCG)' if res.fell_back else ''}{emulated}; "
                  f"L2 run {config['l2_seconds']} s, total {config['total_seconds']} s")
        print(format_table(rows, header))
    return 0
