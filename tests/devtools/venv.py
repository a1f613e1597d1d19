# SPDX-License-Identifier: GPL-2.0-or-later
"""The project's Python venv (.venv) with the pinned tools of requirements-dev.txt."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements-dev.txt"
STAMP = VENV / ".requirements.sha256"


def bin_path(tool: str) -> Path:
    return VENV / "bin" / tool


def ensure(log=print) -> None:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest and bin_path("python").exists():
        return
    log(f"venv: installing {REQUIREMENTS.name} into {VENV}")
    if not bin_path("python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(bin_path("python")), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(digest)


def collections_path() -> Path:
    """A directory whose ansible_collections/vhostblk/fleet is this repository (for ansible and molecule)."""
    tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    base = Path(os.environ.get("VHOSTBLK_CACHE", "/var/cache/vhostblk-fleet")) / "collections" / tag
    link = base / "ansible_collections" / "vhostblk" / "fleet"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    return base


def env() -> dict:
    """Environment for running the venv's tools against this collection."""
    e = dict(os.environ)
    e["PATH"] = f"{VENV / 'bin'}:{e.get('PATH', '')}"
    e["VIRTUAL_ENV"] = str(VENV)
    e["ANSIBLE_COLLECTIONS_PATH"] = str(collections_path())
    e["PYTHONPATH"] = str(ROOT / "tests")
    e.setdefault("ANSIBLE_FORCE_COLOR", "0")
    return e
