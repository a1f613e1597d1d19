# SPDX-License-Identifier: GPL-2.0-or-later
"""``./dev bench``: the engine benchmark, /dev/vhost-blk vs fio (io_uring) side by side in one L1.

Boots a throwaway L1, installs the prebuilt module for its kernel from the signed package
repository disk, and runs the exerciser's ``bench`` (4k random read/write, queue depths 1 and 32,
same backing file and runtime for both) which prints IOPS, mean completion latency and the
vhost-blk/fio ratios. Under TCG the absolute numbers are meaningless; the ratios are the point,
and on real hardware run the same ``python3 -m vhostblk bench`` on the hypervisor itself.

``./dev bench guest`` is the guest benchmark instead (tests/devtools/bench_guest.py): one L2
guest, a vhost-blk-pci disk against QEMU's virtio-blk-pci.

``./dev bench fleet [ansible-playbook args]`` is what an operator runs on real hypervisors,
playbooks/benchmark.yml, against a throwaway test hypervisor after playbooks/site.yml: the report
(report.html, summary.json, PNG charts) lands in ./benchmark-report unless
``-e vhostblk_benchmark_report_dir=DIR`` says otherwise. Its numbers measure emulation.
"""

import os
import sys
import tempfile
from pathlib import Path

from vmharness.l1_vhostblk import vhostblk_l1
from vmharness.paths import REPO_ROOT

TOOLS = "/usr/local/lib/vhostblk-fleet"


def run(args) -> int:
    if args and args[0] == "guest":
        from . import bench_guest

        return bench_guest.run(args[1:])
    if args and args[0] == "fleet":
        return run_fleet(args[1:])
    with tempfile.TemporaryDirectory(prefix="vhostblk-bench-") as tmp, \
            vhostblk_l1(f"bench-{os.getpid()}", tmp, with_qemu=False,
                        log=lambda m: print(f"[bench] {m}", flush=True)) as inst:
        inst.run(f"mkdir -p {TOOLS}")
        inst.put([REPO_ROOT / "tools" / "vhostblk"], TOOLS + "/")
        inst.put([REPO_ROOT / "kmod-src" / "include" / "uapi" / "linux" / "vhost_blk.h"], TOOLS + "/")
        extra = " ".join(args) if args else "--qd 1,32 --runtime 10 --busyloop-us 0,200,1000"
        res = inst.run(f"truncate -s 1G /var/tmp/bench.img && PYTHONPATH={TOOLS} "
                       f"VHOST_BLK_UAPI_HEADER={TOOLS}/vhost_blk.h python3 -m vhostblk bench "
                       f"--file /var/tmp/bench.img {extra}", check=False, timeout=3600)
        print(res.stdout)
        print(res.stderr, file=sys.stderr)
        return res.returncode


def run_fleet(args) -> int:
    """playbooks/site.yml, then playbooks/benchmark.yml, against a throwaway test hypervisor."""
    from .fleet_l1 import fleet_l1

    def log(msg):
        print(f"[bench] {msg}", flush=True)

    # The L2 guests run under TCG inside the emulated hypervisor (nested KVM is not reliable there).
    more = {"vhostblk_benchmark_domain_type": "qemu",
            "vhostblk_benchmark_report_dir": str(Path.cwd() / "benchmark-report")}
    with fleet_l1("bench", log) as l1:
        rc = l1.playbook("site.yml", args=args) or l1.playbook("benchmark.yml", more, args)
    log("report: report.html in vhostblk_benchmark_report_dir (default ./benchmark-report)" if rc == 0
        else "benchmark FAILED")
    return rc
