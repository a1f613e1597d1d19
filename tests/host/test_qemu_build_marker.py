# SPDX-License-Identifier: GPL-2.0-or-later
"""The marker build_qemu.py leaves after a successful build (the build role's `creates:`).

It is named after the content of the series and of the recipe, so another series needs another
build, and a build that fails leaves none (a failed or stale QEMU is never taken as built).
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_QEMU = REPO / "packaging" / "build_qemu.py"
sys.path.insert(0, str(REPO / "packaging"))

import qemu_local_version as qlv  # noqa: E402


def build_qemu(*args):
    return subprocess.run([sys.executable, str(BUILD_QEMU), *map(str, args)], capture_output=True, text=True,
                          check=False)


def test_marker_is_named_after_the_series_content(tmp_path):
    markers = {}
    for series in ("7.2", "10.0"):
        res = build_qemu("--qemu", series, "--out", tmp_path / "out", "--print-marker")
        assert res.returncode == 0, res.stderr
        markers[series] = Path(res.stdout.strip())
        assert markers[series].parent == tmp_path / "out"
        assert qlv.content_hash(qlv.PATCH_ROOT / series)[:16] in markers[series].name
    assert markers["7.2"] != markers["10.0"]
    assert not (tmp_path / "out").exists(), "--print-marker must not build or create anything"


def test_a_failed_build_leaves_no_marker(tmp_path):
    out = tmp_path / "out"
    marker = Path(build_qemu("--qemu", "7.2", "--out", out, "--print-marker").stdout.strip())
    res = build_qemu("--qemu", "7.2", "--source", "vhostblk-no-such-source/bookworm", "--workdir", tmp_path / "work",
                     "--out", out, "--x86-only")
    assert res.returncode != 0, res.stdout
    assert not marker.exists(), sorted(out.iterdir())
