# SPDX-License-Identifier: GPL-2.0-or-later
"""Tools for L2 guests (fio and its libraries) on a second, read-only virtio-blk disk.

Debian's fio needs ~80 MB of libraries (ceph, gluster, ICU data, ...). Packed into the busybox
initramfs they would make every TCG L2 boot much slower (the kernel gunzips the initramfs), so
L1 writes a plain tar of the binaries and the libraries ``ldd`` lists to a raw image, attached to
L2 as a read-only virtio-blk disk at a fixed PCI slot; the guest extracts it into its tmpfs with
busybox tar and runs the tools through their own dynamic loader. No filesystem module needed.
The image is built once per L1 (it lives in L1's throwaway overlay) by the guest_check role's
guest_tools.sh, which packs the role's throwaway guests' tools the same way.
"""

import posixpath
from dataclasses import dataclass
from pathlib import Path

from . import HarnessError
from .l2 import L2_DIR

PACKER = Path(__file__).resolve().parents[2] / "roles" / "guest_check" / "files" / "guest_tools.sh"
TOOLS_SLOT = 0x07  # PCI slot of the tools disk in L2 (q35 root bus)
GUEST_DIR = "/tools"

# A shell function for L2 payloads: the /dev/vdX behind a given PCI slot (hex, two digits), so a
# payload finds its disks by the addr= it gave them, not by probe order.
DISK_AT_SH = r"""
disk_at() {
  for b in /sys/block/vd*; do
    case "$(readlink -f "$b")" in */0000:00:$1.0/*) echo "/dev/${b##*/}" ;; esac
  done
}
"""


def pci_addr(slot: int) -> str:
    return f"0x{slot:02x}"


@dataclass
class ToolsDisk:
    path: str  # the raw image in L1
    interp: str  # the tools' dynamic loader, as the binaries name it
    tools: tuple
    size: int

    def device_args(self, slot: int = TOOLS_SLOT) -> list:
        """QEMU arguments attaching the tools disk to L2 (read-only virtio-blk at ``slot``)."""
        return ["-drive", f"file={self.path},format=raw,if=none,id=l2tools,readonly=on",
                "-device", f"virtio-blk-pci,drive=l2tools,addr={pci_addr(slot)}"]

    def guest_setup(self, slot: int = TOOLS_SLOT) -> str:
        """Payload prologue: extract the tools into tmpfs; afterwards the tools are on PATH."""
        loader_dir = posixpath.dirname(self.interp)
        return DISK_AT_SH + f"""
T=$(disk_at {slot:02x})
[ -b "$T" ] || {{ echo "NO-TOOLS: no disk at PCI slot {slot:02x}"; exit 1; }}
mkdir -p {GUEST_DIR} {loader_dir}
tar -xf "$T" -C {GUEST_DIR} || {{ echo "NO-TOOLS: tar failed on $T"; exit 1; }}
ln -sf {GUEST_DIR}/lib/{posixpath.basename(self.interp)} {self.interp}
export LD_LIBRARY_PATH={GUEST_DIR}/lib PATH={GUEST_DIR}/bin:$PATH
"""


def build_tools_disk(l1, tools=("fio",)) -> ToolsDisk:
    """Build (once per L1) the tools image in L1 with the guest_check role's guest_tools.sh (the one
    way tools are packed for a throwaway guest); return its description."""
    image = f"{L2_DIR}/tools-{'-'.join(tools)}.tar"
    have = l1.run(f"stat -c %s {image} 2>/dev/null", check=False)
    if have.returncode != 0 or not have.stdout.strip():
        l1.run(f"mkdir -p {L2_DIR}")
        l1.put([PACKER], f"{L2_DIR}/")
        l1.run(f"sh {L2_DIR}/{PACKER.name} {image} {' '.join(tools)}", timeout=300)
    size = int(l1.run(f"stat -c %s {image}").stdout.strip())
    interp = l1.run(f"tar -xOf {image} interp").stdout.strip()
    if not interp.startswith("/"):
        raise HarnessError(f"{image} names no dynamic loader: {interp!r}")
    return ToolsDisk(path=image, interp=interp, tools=tuple(tools), size=size)
