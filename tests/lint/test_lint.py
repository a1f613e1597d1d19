# SPDX-License-Identifier: GPL-2.0-or-later
"""Static checks: yamllint, ansible-lint (production), ruff, antsibull-changelog, galaxy build/install."""

import os
import subprocess
import tarfile

import pytest
from vmharness.paths import REPO_ROOT


def _run(cmd, cwd=REPO_ROOT, timeout=900, env=None):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    return res.returncode, (res.stdout + res.stderr)[-12000:]


def test_yamllint():
    rc, out = _run(["yamllint", "-s", "."])
    assert rc == 0, out


def test_ansible_lint_production_profile():
    rc, out = _run(["ansible-lint", "--profile", "production", "--offline"])
    assert rc == 0, out


def test_ruff():
    rc, out = _run(["ruff", "check", "."])
    assert rc == 0, out


def test_changelog_fragments():
    rc, out = _run(["antsibull-changelog", "lint"])
    assert rc == 0, out


@pytest.fixture(scope="module")
def built_collection(tmp_path_factory):
    out = tmp_path_factory.mktemp("galaxy")
    rc, log = _run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(out)])
    assert rc == 0, log
    tarballs = list(out.glob("vhostblk-fleet-*.tar.gz"))
    assert len(tarballs) == 1, log
    return tarballs[0]


def test_galaxy_build_leaves_out_build_outputs(built_collection):
    with tarfile.open(built_collection) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    for must in ("roles/kmod/meta/argument_specs.yml", "kmod-src/include/uapi/linux/vhost_blk.h",
                 "tools/vhostblk/__main__.py", "playbooks/site.yml"):
        assert must in names, must
    for bad in (".qcow2", ".raw", ".ko", ".o", ".deb", "__pycache__", ".venv/", "tests/output/"):
        assert not [n for n in names if bad in n], bad


def test_galaxy_install_accepts_tarball(built_collection, tmp_path):
    rc, log = _run(["ansible-galaxy", "collection", "install", "--force", "-p", str(tmp_path), str(built_collection)])
    assert rc == 0, log
    root = tmp_path / "ansible_collections" / "vhostblk" / "fleet"
    assert (root / "MANIFEST.json").is_file()
    rc, out = _run(["ansible-doc", "-t", "role", "-l", "vhostblk.fleet"], cwd=tmp_path,
                   env={"ANSIBLE_COLLECTIONS_PATH": str(tmp_path)})
    assert rc == 0 and "vhostblk.fleet.kmod" in out, out
