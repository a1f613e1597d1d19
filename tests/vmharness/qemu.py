# SPDX-License-Identifier: GPL-2.0-or-later
"""The qemu-system-x86_64 command line that boots L1."""

import os
import re
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
    # a second NIC on a point-to-point link to one other L1 (PeerLink), and disks another L1 writes too
    peer_link: Optional["PeerLink"] = None
    shared_disks: Tuple[Path, ...] = field(default_factory=tuple)


# The peer link is a UDP tunnel on the loopback (-netdev socket,udp=,localaddr=): each end sends to the
# other's port and receives on its own. Unlike listen=/connect= it needs no start order (a connect=
# end fails when it starts before the listening one, and molecule boots its VMs at once), and unlike
# mcast= it works on a loopback without the MULTICAST flag. The ports are the pair's own (two runs
# never share a segment). L1 configures the address itself (it knows the NIC by its MAC).


@dataclass(frozen=True)
class PeerLink:
    """One end of a point-to-point link between two L1s: the UDP ports on 127.0.0.1 and its MAC."""

    local_port: int
    remote_port: int
    mac: str

    def __post_init__(self):
        for name in ("local_port", "remote_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ValueError(f"peer link {name} {port}: must be a port from 1 to 65535")
        if self.local_port == self.remote_port:
            raise ValueError(f"peer link: local and remote port are both {self.local_port} (each end needs its own)")
        if not re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", self.mac):
            raise ValueError(f"peer link MAC {self.mac!r}: must be a local QEMU address 52:54:00:xx:xx:xx (lower case)")

    @classmethod
    def parse(cls, text: str, mac: str) -> "PeerLink":
        """``LOCAL:REMOTE`` (the --peer-link value)."""
        m = re.fullmatch(r"(\d+):(\d+)", text)
        if not m:
            raise ValueError(f"--peer-link {text!r}: must be LOCAL_PORT:REMOTE_PORT (UDP ports on 127.0.0.1)")
        return cls(int(m.group(1)), int(m.group(2)), mac)


# PCI slots of the shared disks on q35's root bus: after every slot QEMU assigns the other devices
SHARED_DISK_SLOTS = (0x18, 0x19, 0x1a)


def shared_disk_serial(index: int) -> str:
    """virtio serial of shared disk ``index``: L1 finds it as /dev/disk/by-id/virtio-<serial>."""
    return f"vhostblk-shared{index}"


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
    if len(spec.shared_disks) > len(SHARED_DISK_SLOTS):
        raise ValueError(f"at most {len(SHARED_DISK_SLOTS)} shared disks, not {len(spec.shared_disks)}")
    for i, shared in enumerate(spec.shared_disks):
        # written by two L1s at once: no host cache between them (directsync), and share-rw=on lets
        # QEMU's image locking take the write permission shared with the other L1's QEMU. QEMU creates
        # the if=virtio disks after every -device, so without a slot of its own this disk would take
        # the first one and become /dev/vda: it sits behind them (L1 finds it by serial anyway).
        cmd += ["-drive", f"file={shared},format=raw,if=none,id=shared{i},cache=directsync,aio=threads"]
        cmd += ["-device", f"virtio-blk-pci,drive=shared{i},share-rw=on,serial={shared_disk_serial(i)},"
                           f"addr={SHARED_DISK_SLOTS[i]:#x}"]
    cmd += ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22"]
    cmd += ["-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"]
    if spec.peer_link:
        link = spec.peer_link
        cmd += ["-netdev", f"socket,id=n1,udp=127.0.0.1:{link.remote_port},localaddr=127.0.0.1:{link.local_port}"]
        cmd += ["-device", f"virtio-net-pci,netdev=n1,mac={link.mac}"]
    cmd += ["-display", "none", "-no-reboot", "-serial", f"file:{spec.serial_log}"]
    return cmd


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_udp_ports(count: int, host: str = "127.0.0.1") -> list:
    """``count`` different UDP ports on loopback that nobody uses right now (all held until all are chosen)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for dummy in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def overlay_command(base: Path, overlay: Path, qemu_img: str = "qemu-img") -> list:
    """A throwaway copy-on-write overlay on top of the cached raw image."""
    return [qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)]


def tail(path: Optional[Path], lines: int = 40) -> str:
    """Last lines of a log file, or a note that it is missing."""
    if path is None or not Path(path).exists():
        return f"(no log at {path})"
    data = Path(path).read_bytes()[-64 * 1024:].decode(errors="replace")
    return "\n".join(data.splitlines()[-lines:])
