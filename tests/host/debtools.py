# SPDX-License-Identifier: GPL-2.0-or-later
"""Commands and small stand-in .debs for the packaging host tests."""

import shutil
import subprocess


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], check=False, **kw)


def ok(cmd, **kw):
    """Run ``cmd``; its stdout, or the test fails with its output."""
    res = run(cmd, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def build_deb(deb, control, files=None):
    """Build ``deb`` (a path) from control text and {relative path: text} with dpkg-deb; returns ``deb``."""
    root = deb.parent / (deb.name + ".tree")
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(control)
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    try:
        ok(["dpkg-deb", "--root-owner-group", "--build", root, deb])
    finally:
        shutil.rmtree(root)
    return deb
