# SPDX-License-Identifier: GPL-2.0-or-later
"""An L1 ready for vhost-blk guests: the module from the signed repository disk, the patched QEMU.

L1 gets the vhost-blk packages from the signed repository disk (prebuilt module for its kernel)
and, when asked, the patched QEMU (the x86_64 system emulator built from Debian's source with our
series, packaging/build_qemu_minimal.py). Used by tests/vm/test_guest_io.py and ``./dev bench``.
"""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from . import HarnessError
from .image import build_image
from .instance import create, destroy
from .packages import MOUNT, build_repo_image
from .paths import REPO_ROOT
from .recipe import get_recipe

QEMU_IN_L1 = "/usr/local/lib/vhostblk-fleet/qemu-system-x86_64"
# Debian keeps QEMU's firmware in three places (its own build sets --firmwarepath to them).
FIRMWARE = ["-L", "/usr/share/qemu", "-L", "/usr/share/seabios", "-L", "/usr/lib/ipxe/qemu"]
FIRMWARE_ARGS = " ".join(FIRMWARE)


def install_module_from_repo(inst) -> str:
    """Install vhost-blk-modules-$(uname -r) from the repository disk (/dev/vdb), load it; its path."""
    res = inst.run(f"mkdir -p {MOUNT} && (mountpoint -q {MOUNT} || mount -o ro /dev/vdb {MOUNT}) && "
                   f"cp {MOUNT}/vhostblk-local.gpg /usr/share/keyrings/vhostblk-fleet.gpg && "
                   f"echo 'deb [signed-by=/usr/share/keyrings/vhostblk-fleet.gpg] file:{MOUNT} bookworm main' "
                   "> /etc/apt/sources.list.d/vhostblk-fleet.list && "
                   "apt-get update -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/vhostblk-fleet.list "
                   "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >/dev/null && "
                   "DEBIAN_FRONTEND=noninteractive apt-get install -y -q vhost-blk-modules-$(uname -r) >/dev/null && "
                   "modprobe vhost_blk && modinfo -n vhost_blk", timeout=900)
    return res.stdout.strip()


def build_patched_qemu() -> dict:
    """Build (or reuse from the cache) the patched qemu-system-x86_64; its JSON summary."""
    res = subprocess.run([sys.executable, str(REPO_ROOT / "packaging" / "build_qemu_minimal.py")],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise HarnessError("build_qemu_minimal.py failed:\n" + res.stdout[-3000:] + res.stderr[-3000:])
    return json.loads(res.stdout)


def install_patched_qemu(inst, qemu: dict) -> None:
    """Copy the patched QEMU into L1 and check that it knows the vhost-blk-pci device."""
    inst.run(f"mkdir -p {os.path.dirname(QEMU_IN_L1)}")
    inst.put([Path(qemu["binary"])], QEMU_IN_L1)
    devices = inst.run(f"{QEMU_IN_L1} {FIRMWARE_ARGS} -device help").stdout
    if "vhost-blk-pci" not in devices:
        raise HarnessError(f"the patched QEMU in L1 has no vhost-blk-pci device:\n{devices[-3000:]}")


@contextmanager
def vhostblk_l1(name: str, workdir: Path, with_qemu: bool = True, log=print):
    """Boot a throwaway L1 with the vhost-blk module loaded (and the patched QEMU); destroy it after.

    ``workdir`` (host) receives the repository disk image.
    """
    recipe = get_recipe("debian12")
    image = build_image(recipe, log=log)
    repo_img = Path(workdir) / "repo.img"
    build_repo_image(recipe, image, repo_img)
    qemu = build_patched_qemu() if with_qemu else None
    if qemu:
        log(f"patched QEMU: {qemu}")
    inst = create(name, owner=os.getpid(), extra_disks=[repo_img], image=image, log=log)
    try:
        log(f"vhost_blk module in L1: {install_module_from_repo(inst)}")
        if qemu:
            install_patched_qemu(inst, qemu)
        yield inst
    finally:
        destroy(inst.dir)
