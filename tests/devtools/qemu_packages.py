# SPDX-License-Identifier: GPL-2.0-or-later
"""``./dev test --qemu-packages``: the patched QEMU .debs in the package cache, built when missing.

The gate does not build them (packaging/build_qemu.py --x86-only takes about 50 minutes on two
cores); with this flag the test command builds them once per patch series, publishes them where
packaging/build_all.py takes them from (the repository disk the VM tests give L1), and the tests
that need them (molecule default: the qemu part of the hypervisor role and the libvirt guest)
run instead of being deselected.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .venv import ROOT

ENV = "VHOSTBLK_QEMU_PACKAGES"  # "1": the tests that need the packages are collected and must pass
SERIES, SUITE = "7.2", "bookworm"
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]


def _build_all():
    sys.path.insert(0, str(ROOT / "packaging"))
    import build_all

    return build_all


def ensure(log=print) -> Path:
    """The cache directory holding the current series' .debs (built and published when empty)."""
    build_all = _build_all()
    dest = build_all.cached_qemu_dir(SUITE)
    if dest.is_dir() and any(dest.glob("qemu-system-x86_*.deb")):
        log(f"patched QEMU packages: cached in {dest}")
        return dest
    log(f"patched QEMU packages: building qemu {SERIES} for {SUITE} (about 50 minutes on 2 cores)")
    subprocess.run([*APT, "build-dep", "--arch-only", f"qemu/{SUITE}"], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="vhostblk-qemu-debs-") as out:
        res = subprocess.run([sys.executable, str(ROOT / "packaging" / "build_qemu.py"), "--qemu", SERIES,
                              "--x86-only", "--out", out], capture_output=True, text=True, check=False)
        summary = json.loads(res.stdout[res.stdout.rindex("\n{") + 1:]) if "\n{" in res.stdout else {}
        if res.returncode != 0 or summary.get("result") != "built":
            raise RuntimeError(f"build_qemu.py failed ({res.returncode}):\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
        log(f"patched QEMU packages: built {summary['version']} in {summary['total_seconds']:.0f}s")
        return build_all.publish_qemu(out, SUITE)
