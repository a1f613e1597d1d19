# SPDX-License-Identifier: GPL-2.0-or-later
"""Tools for L2 guests (fio and its libraries) on a second, read-only virtio-blk disk.

Debian's fio needs ~80 MB of libraries (ceph, gluster, ICU data, ...). Packed into the busybox
initramfs they would make every TCG L2 boot much slower (the kernel gunzips the initramfs), so
L1 writes a plain tar of the binaries and the libraries ``ldd`` lists to a raw image, attached to
L2 as a read-only virtio-blk disk at a fixed PCI slot; the guest extracts it into its tmpfs with
busybox tar and runs the tools through their own dynamic loader. No filesystem module needed.
The image is built once per L1 (it lives in L1's throwaway overlay).
"""

import posixpath
import re
from dataclasses import dataclass

from . import HarnessError
from .l2 import L2_DIR

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

_LDD_ARROW = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_PLAIN = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def parse_ldd(text: str) -> tuple:
    """``ldd`` output -> (interpreter, [library paths]); vdso skipped, a missing library is an error."""
    interp, libs, missing = "", [], []
    for line in text.splitlines():
        if "not found" in line:
            missing.append(line.split()[0])
            continue
        m = _LDD_ARROW.match(line)
        if m:
            if m.group(2).startswith("/"):
                libs.append(m.group(2))
            continue
        m = _LDD_PLAIN.match(line)
        if m:
            if posixpath.basename(m.group(1)).startswith("ld-linux"):
                interp = m.group(1)
            else:
                libs.append(m.group(1))
    if missing:
        raise HarnessError(f"ldd: libraries not found: {', '.join(missing)}")
    if not interp:
        raise HarnessError(f"ldd names no dynamic loader:\n{text}")
    return interp, libs


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


def stage_script(image: str, binaries: list, libs: list) -> str:
    """Shell run in L1: copy binaries and libraries (dereferenced) into bin/ and lib/, tar to ``image``."""
    lines = ["set -eu", 'd=$(mktemp -d)', 'trap \'rm -rf "$d"\' EXIT', 'mkdir -p "$d/bin" "$d/lib"']
    lines += [f'cp -L {b} "$d/bin/"' for b in binaries]
    lines += [f'cp -L {lib} "$d/lib/"' for lib in sorted(set(libs))]
    lines += [f'tar -cf {image}.tmp -C "$d" bin lib', f"mv {image}.tmp {image}", f"stat -c %s {image}"]
    return "\n".join(lines) + "\n"


def build_tools_disk(l1, tools=("fio",)) -> ToolsDisk:
    """Build (once per L1) the tools image in L1; return its description."""
    image = f"{L2_DIR}/tools-{'-'.join(tools)}.tar"
    binaries, libs, interp = [], [], ""
    for tool in tools:
        path = l1.run(f"command -v {tool}").stdout.strip()
        binaries.append(path)
        t_interp, t_libs = parse_ldd(l1.run(f"ldd {path}").stdout)
        if interp and t_interp != interp:
            raise HarnessError(f"{tool} wants loader {t_interp}, another tool {interp}")
        interp = t_interp
        libs += t_libs + [t_interp]
    have = l1.run(f"stat -c %s {image} 2>/dev/null", check=False)
    if have.returncode == 0 and have.stdout.strip():
        size = int(have.stdout.strip())
    else:
        l1.run(f"mkdir -p {L2_DIR}")
        size = int(l1.run("sh -s", input_text=stage_script(image, binaries, libs), timeout=300).stdout.split()[-1])
    return ToolsDisk(path=image, interp=interp, tools=tuple(tools), size=size)
