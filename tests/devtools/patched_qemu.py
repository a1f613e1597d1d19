# SPDX-License-Identifier: GPL-2.0-or-later
"""A qemu-system-x86_64 that has our vhost-blk-pci device, for tests that run QEMU on the host.

$VHOSTBLK_QEMU_BIN names one explicitly; otherwise packaging/build_qemu_minimal.py provides it
(Debian's source with our series, x86_64 system emulator only; cached by the hash of the series,
so a warm call returns at once, a cold one builds for about 20 minutes on 2 cores).
The binary has no firmware of its own: give it the distribution's with -L /usr/share/seabios.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = "VHOSTBLK_QEMU_BIN"


def has_vhost_blk(binary: str) -> bool:
    res = subprocess.run([binary, "-machine", "none", "-device", "help"], capture_output=True, text=True,
                         timeout=60, check=False)
    return 'name "vhost-blk-pci"' in res.stdout


def build_minimal(qemu: str = "7.2") -> str:
    res = subprocess.run([sys.executable, str(REPO / "packaging" / "build_qemu_minimal.py"), "--qemu", qemu],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"packaging/build_qemu_minimal.py --qemu {qemu} failed:\n{res.stdout[-3000:]}"
                           f"{res.stderr[-3000:]}")
    return json.loads(res.stdout)["binary"]


def patched_qemu() -> str:
    """Path of a patched qemu-system-x86_64; RuntimeError with the reason when there is none."""
    binary = os.environ.get(ENV) or build_minimal()
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is not an executable")
    if not has_vhost_blk(binary):
        raise RuntimeError(f"{binary} does not list the vhost-blk-pci device")
    return binary
