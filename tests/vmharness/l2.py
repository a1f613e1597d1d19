# SPDX-License-Identifier: GPL-2.0-or-later
"""L2 guests inside L1: a busybox initramfs, nested-KVM probing, and a run-with-fallback helper.

Nested KVM under TCG is fast but fails about one run in seven under I/O load (L2 hangs or
resets). So L2 runs under TCG by default; ``VHOSTBLK_L2_ACCEL=auto`` tries KVM first (after a
probe) and falls back to TCG when the KVM run does not finish cleanly, and
``VHOSTBLK_L2_ACCEL=kvm`` forces KVM.
"""

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import HarnessError

L2_DIR = "/var/lib/vhostblk-l2"
DONE_MARKER = "VHOSTBLK-L2-DONE"

# The initramfs builder (also used by the molecule scenarios, so it is a shell script).
BUILDER = Path(__file__).resolve().parents[2] / "roles" / "guest_check" / "files" / "guest_initramfs.sh"


@dataclass
class L2Result:
    accel: str
    rc: int
    console: str
    fell_back: bool = False


def build_initramfs(l1, payload: str, name: str = "l2") -> str:
    """Build an initramfs in L1 that runs ``payload`` (sh) in L2; return its path in L1."""
    l1.run(f"mkdir -p {L2_DIR}")
    l1.put([BUILDER], f"{L2_DIR}/")
    l1.run(f"cat > {L2_DIR}/{name}.payload.sh", input_text=payload)
    out = f"{L2_DIR}/{name}.cpio.gz"
    l1.run(f"sh {L2_DIR}/{BUILDER.name} {out} {L2_DIR}/{name}.payload.sh", timeout=300)
    return out


def qemu_l2_command(accel: str, initrd: str, devices: list, memory_mib: int = 512,
                    qemu: str = "qemu-system-x86_64") -> list:
    """argv for an L2 run: L1's own kernel, our initramfs, serial on stdout."""
    if accel not in ("tcg", "kvm"):
        raise ValueError(f"L2 accel must be tcg or kvm, not {accel!r}")
    # TCG in L2: one thread for all vCPUs. L1 has two vCPUs, so more TCG threads only contend, and
    # QEMU 7.2 with our series once crashed (NULL MemoryRegion in memory_region_dispatch_write)
    # with four MTTCG vCPUs during boot; see the note on issue 4.
    accel_arg = "tcg,thread=single" if accel == "tcg" else accel
    cmd = [qemu, "-machine", "q35", "-accel", accel_arg, "-cpu", "max" if accel == "tcg" else "host",
           "-m", str(memory_mib), "-smp", "1", "-kernel", "/boot/vmlinuz-$(uname -r)", "-initrd", initrd,
           "-append", "console=ttyS0 quiet panic=-1", "-no-reboot", "-nodefaults", "-display", "none",
           "-serial", "stdio"]
    for dev in devices:
        cmd += dev
    return cmd


def ensure_nested_kvm(l1) -> bool:
    """Load kvm_amd (or kvm_intel) in L1; True when /dev/kvm is there afterwards."""
    res = l1.run("modprobe kvm_amd 2>/dev/null || modprobe kvm_intel 2>/dev/null; test -c /dev/kvm", check=False)
    return res.returncode == 0


def run_l2(l1, initrd: str, devices: list, accel: str = "", timeout: float = 300,
           memory_mib: int = 512, qemu: str = "qemu-system-x86_64", kvm_timeout: float = 120) -> L2Result:
    """Run one L2 guest to completion; returns its console. Falls back from KVM to TCG when the
    KVM run hangs (longer than ``kvm_timeout``) or ends without the payload's marker."""
    accel = accel or os.environ.get("VHOSTBLK_L2_ACCEL", "tcg")
    if accel not in ("tcg", "kvm", "auto"):
        raise ValueError(f"VHOSTBLK_L2_ACCEL must be tcg, kvm or auto, not {accel!r}")
    tries = ["tcg"] if accel == "tcg" else (["kvm"] if accel == "kvm" else ["kvm", "tcg"])
    if "kvm" in tries and not ensure_nested_kvm(l1):
        if accel == "kvm":
            raise HarnessError("VHOSTBLK_L2_ACCEL=kvm but /dev/kvm does not work in L1")
        tries = ["tcg"]
    last = None
    for i, mode in enumerate(tries):
        cmd = " ".join(shlex.quote(c) if "$(" not in c else c
                       for c in qemu_l2_command(mode, initrd, devices, memory_mib, qemu))
        per_try = timeout if mode == "tcg" else min(timeout, kvm_timeout)
        res = l1.run(f"timeout -k 5 {int(per_try)} {cmd} 2>&1", check=False, timeout=per_try + 60)
        console = res.stdout
        rc = parse_rc(console)
        last = L2Result(accel=mode, rc=rc if rc is not None else -1, console=console, fell_back=i > 0)
        if rc is not None:
            return last
    raise HarnessError(f"L2 guest did not finish (tried {', '.join(tries)}); console tail:\n"
                       + "\n".join(last.console.splitlines()[-40:]))


def parse_rc(console: str):
    """The payload's exit status from the L2 console, or None when the guest never got there."""
    for line in console.splitlines():
        if DONE_MARKER in line and "rc=" in line:
            try:
                return int(line.split("rc=", 1)[1].split()[0])
            except ValueError:
                return None
    return None
