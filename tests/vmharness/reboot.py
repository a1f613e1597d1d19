# SPDX-License-Identifier: GPL-2.0-or-later
"""Reboot a running L1 into the kernel its own disk boots by default.

L1 boots with ``-kernel``/``-initrd`` (the image has no bootloader), so a kernel installed inside
L1 (apt) would never boot. A reboot therefore takes what the disk's own boot configuration names:
Debian's /vmlinuz and /initrd.img links, which the kernel packages keep on the newest installed
kernel (linux-update-symlinks; GRUB's default entry is the same kernel). They are copied out over
SSH, L1 shuts down cleanly (``systemctl reboot``; QEMU runs with -no-reboot and exits), and the
supervisor starts QEMU again on the same overlay with them (supervisor.REBOOT_REQUEST).
"""

import json
import time
from pathlib import Path

from . import HarnessError, proc
from .instance import DEFAULT_BOOT_TIMEOUT, Instance
from .qemu import tail
from .supervisor import REBOOT_REQUEST, STATE

BOOT_LINKS = ("/vmlinuz", "/initrd.img")


def with_boot_files(argv: list, kernel: Path, initrd: Path) -> list:
    """``argv`` with the values of -kernel and -initrd replaced."""
    out = list(argv)
    for opt, value in (("-kernel", kernel), ("-initrd", initrd)):
        if opt not in out[:-1]:
            raise HarnessError(f"L1 command line has no {opt} to replace: {argv}")
        out[out.index(opt) + 1] = str(value)
    return out


def default_boot_files(inst: Instance) -> tuple:
    """(kernel release, kernel path, initrd path) in L1 that its /vmlinuz and /initrd.img name."""
    paths = inst.run("readlink -e " + " ".join(BOOT_LINKS), check=False).stdout.split()
    if len(paths) != 2:
        raise HarnessError(f"L1 has no {' and '.join(BOOT_LINKS)} links to a kernel and its initrd: {paths}")
    kernel, initrd = paths
    release = Path(kernel).name.removeprefix("vmlinuz-")
    if Path(initrd).name != f"initrd.img-{release}":
        raise HarnessError(f"L1's default initrd {initrd} is not the one of its default kernel {kernel}")
    return release, kernel, initrd


def reboot(inst: Instance, timeout: float = DEFAULT_BOOT_TIMEOUT, log=print) -> str:
    """Reboot ``inst`` into its default kernel; return the release it runs afterwards."""
    start = time.monotonic()
    release, kernel, initrd = default_boot_files(inst)
    boot_dir = inst.dir / f"boot-{release}"
    boot_dir.mkdir(exist_ok=True)
    inst.get([kernel, initrd], boot_dir)
    state = inst.state
    state["argv"] = with_boot_files(state["argv"], boot_dir / Path(kernel).name, boot_dir / Path(initrd).name)
    (inst.dir / (STATE + ".tmp")).write_text(json.dumps(state, indent=2))
    (inst.dir / (STATE + ".tmp")).rename(inst.dir / STATE)
    before = inst.runtime().get("qemu")
    (inst.dir / REBOOT_REQUEST).write_text(release + "\n")
    inst.run("systemctl --no-block reboot", timeout=60, check=False)  # the connection may drop
    deadline = time.monotonic() + timeout
    while inst.runtime().get("qemu") == before:
        if not proc.alive(inst.runtime().get("supervisor")):
            raise HarnessError(f"L1's supervisor stopped instead of rebooting it:\n"
                               f"{tail(inst.dir / 'supervisor.log')}\nserial console tail:\n{tail(inst.serial_log)}")
        if time.monotonic() > deadline:
            raise HarnessError(f"L1 did not shut down for the reboot within {timeout:.0f}s.\n"
                               f"serial console tail:\n{tail(inst.serial_log)}")
        time.sleep(1)
    inst.wait_ssh(max(deadline - time.monotonic(), 60))
    running = inst.run("uname -r").stdout.strip()
    if running != release:
        raise HarnessError(f"L1 rebooted into {running}, not its default kernel {release}")
    log(f"L1 {inst.name}: rebooted into {release} in {time.monotonic() - start:.0f}s")
    return running
