# SPDX-License-Identifier: GPL-2.0-or-later
"""Static checks: yamllint, ansible-lint (production), ruff, antsibull-changelog, galaxy build/install."""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from vmharness.paths import REPO_ROOT


def _run(cmd, cwd=REPO_ROOT, timeout=900, env=None):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                         env={**os.environ, **(env or {})})
    return res.returncode, (res.stdout + res.stderr)[-12000:]


def test_yamllint():
    rc, out = _run(["yamllint", "-s", "."])
    assert rc == 0, out


def test_ansible_lint_production_profile():
    # not --offline: ansible-lint then installs this collection into .ansible/ to resolve its roles
    rc, out = _run(["ansible-lint", "--profile", "production"])
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
                 "tools/vhostblk/__main__.py", "playbooks/site.yml",
                 "roles/build/meta/argument_specs.yml", "playbooks/rollout.yml"):
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


def _seed_ansible_test_get_pip():
    """ansible-test bootstraps pip with a get-pip script it downloads from a host this machine
    cannot reach; give it a stand-in that seeds pip from ensurepip and installs from PyPI."""
    cache = Path.home() / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("get_pip_23_1_2.py", "get_pip_24_2.py"):
        if not (cache / name).exists():
            shutil.copyfile(Path(__file__).with_name("get_pip_standin.py"), cache / name)


def test_ansible_test_sanity(tmp_path):
    tree = tmp_path / "ansible_collections" / "vhostblk" / "fleet"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    _seed_ansible_test_get_pip()
    rc, out = _run(["ansible-test", "sanity", "--python", "3.11", "--venv", "--color", "no"], cwd=tree,
                   timeout=1800)
    print(out[-6000:])
    assert rc == 0, out
