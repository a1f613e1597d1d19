# SPDX-License-Identifier: GPL-2.0-or-later
"""The vhost-blk package repository as a read-only disk for L1 (no network address involved)."""

import json
import subprocess
import sys
from pathlib import Path

from . import HarnessError
from .image import Image, kernel_release
from .paths import REPO_ROOT
from .recipe import Recipe

# Where the prepare step mounts the disk in L1, and the apt source the roles then use.
MOUNT = "/mnt/vhostblk-repo"


# Suites whose kernel headers this (bookworm) machine cannot install, so no prebuilt module package
# is built for their kernels: their repository holds vhost-blk-dkms and vhost-blk-tools, and L1
# builds the module with DKMS from its own headers (install method dkms_deb).
DKMS_ONLY_SUITES = {"trixie": "linux-headers-*+deb13 needs libc6 (>= 2.38) and gcc-14"}


def build_all_command(recipe: Recipe, image: Image, out: Path) -> list:
    """packaging/build_all.py for the image's kernel (none for a DKMS_ONLY_SUITES suite)."""
    kernels = [] if recipe.suite in DKMS_ONLY_SUITES else ["--kernel", kernel_release(image.kernel)]
    return [sys.executable, str(REPO_ROOT / "packaging" / "build_all.py"), *kernels, "--suite", recipe.suite,
            "--repo-image", str(out)]


def build_repo_image(recipe: Recipe, image: Image, out: Path) -> str:
    """Build (or reuse) every package for the image's kernel; copy the repository disk to ``out``."""
    cmd = build_all_command(recipe, image, out)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise HarnessError(f"building the package repository failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)["image"]
