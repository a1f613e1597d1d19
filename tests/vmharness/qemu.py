# SPDX-License-Identifier: GPL-2.0-or-later
"""The qemu-system-x86_64 command line that boots L1."""

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

KERNEL_APPEND = "root=/dev/vda rw console=ttyS0 quiet net.ifnames=0 systemd.show_status=0"


@dataclass(frozen=True)
class BootSpec:
    """Everything that goes into one L1 boot."""

    kernel: Path
    initrd: Path
    disk: Path
    ssh_port: int
    serial_log: Path
    accel: str = "tcg"
    smp: int = 2
    memory_mib: int = 4096
    extra_disks: Tuple[Path, ...] = field(default_factory=tuple)
    qemu: str = "qemu-system-x86_64"
    append: str = ""


def accel_args(accel: str) -> list:
    if accel == "tcg":
        # -cpu max under TCG emulates SVM: kvm_amd loads in L1 and runs L2 guests.
        return ["-accel", "tcg,thread=multi,tb-size=512", "-cpu", "max"]
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    raise ValueError(f"accel must be 'tcg' or 'kvm', not {accel!r}")


def default_accel() -> str:
    """TCG unless VHOSTBLK_L1_ACCEL=kvm: this kind of host's /dev/kvm cannot run a stock kernel."""
    accel = os.environ.get("VHOSTBLK_L1_ACCEL", "tcg")
    accel_args(accel)  # validate
    return accel


def l1_command(spec: BootSpec) -> list:
    """argv for booting ``spec`` (not daemonized: the supervisor owns the process)."""
    cmd = [spec.qemu, "-name", "vhostblk-l1", "-machine", "q35"]
    cmd += accel_args(spec.accel)
    cmd += ["-smp", str(spec.smp), "-m", str(spec.memory_mib)]
    cmd += ["-kernel", str(spec.kernel), "-initrd", str(spec.initrd)]
    cmd += ["-append", (KERNEL_APPEND + " " + spec.append).strip()]
    cmd += ["-drive", f"file={spec.disk},format=qcow2,if=virtio,cache=unsafe,aio=threads"]
    for extra in spec.extra_disks:
        fmt = "qcow2" if str(extra).endswith(".qcow2") else "raw"
        cmd += ["-drive", f"file={extra},format={fmt},if=virtio,readonly=on"]
    cmd += ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22"]
    cmd += ["-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"]
    cmd += ["-display", "none", "-no-reboot", "-serial", f"file:{spec.serial_log}"]
    return cmd


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def overlay_command(base: Path, overlay: Path, qemu_img: str = "qemu-img") -> list:
    """A throwaway copy-on-write overlay on top of the cached raw image."""
    return [qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)]


def tail(path: Optional[Path], lines: int = 40) -> str:
    """Last lines of a log file, or a note that it is missing."""
    if path is None or not Path(path).exists():
        return f"(no log at {path})"
    data = Path(path).read_bytes()[-64 * 1024:].decode(errors="replace")
    return "\n".join(data.splitlines()[-lines:])
