# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the harness keeps its cache and its per-run state."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Persistent cache (images, ccache, packages): $VHOSTBLK_CACHE or /var/cache/vhostblk-fleet."""
    return Path(os.environ.get("VHOSTBLK_CACHE", "/var/cache/vhostblk-fleet"))


def images_dir() -> Path:
    return cache_dir() / "images"


def state_dir() -> Path:
    """Throwaway per-run state (overlays, pid files, logs): $VHOSTBLK_STATE or /run/vhostblk-fleet."""
    return Path(os.environ.get("VHOSTBLK_STATE", "/run/vhostblk-fleet"))
