# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the vhost_blk module with W=1 against every supported headers tree.

Each build runs on a temporary copy of kmod-src/, so no build output ever
lands in the source tree. A warning or error fails the test. If none of the
supported headers trees is installed the test fails (the check must not pass
vacuously); a single missing version is skipped with the package to install.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KMOD_SRC = REPO / "kmod-src"
HEADERS_GLOB = "linux-headers-*-amd64"
SRC_ROOT = Path(os.environ.get("VHOST_BLK_HEADERS_ROOT", "/usr/src"))

# Supported kernel series: Debian 12 (6.1) and bookworm-backports/Debian 13 (6.12).
SUPPORTED = {
    "6.1": "linux-headers-6.1.0-*-amd64 (Debian 12)",
    "6.12": "linux-headers-6.12.*-amd64 (bookworm-backports / Debian 13)",
}

WARNING_RE = re.compile(r"\b(warning|error)\b|\bWARNING:", re.IGNORECASE)
# Harmless kbuild notes that contain none of our code's problems.
BENIGN_RE = re.compile(r"Skipping BTF generation|module verification failed")


def _series(tree):
    m = re.match(r"linux-headers-(\d+)\.(\d+)[.-]", tree.name)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _trees():
    found = {}
    for tree in sorted(SRC_ROOT.glob(HEADERS_GLOB)):
        series = _series(tree)
        if series in SUPPORTED and (tree / "Makefile").exists():
            found.setdefault(series, []).append(tree)
    return found


def _problems(output):
    return [
        line for line in output.splitlines()
        if WARNING_RE.search(line) and not BENIGN_RE.search(line)
    ]


def test_some_supported_headers_tree_is_installed():
    found = _trees()
    assert found, (
        f"no supported kernel headers under {SRC_ROOT} (looked for "
        f"{', '.join(SUPPORTED.values())}): the module cannot be compile-checked"
    )


def test_problem_filter_sees_warnings():
    sample = "kmod/req.c:12:5: warning: no previous prototype for 'x'\n  CC [M] a.o\n"
    assert _problems(sample) == [sample.splitlines()[0]]
    assert _problems("Skipping BTF generation for x.ko\n") == []


@pytest.mark.parametrize("series", sorted(SUPPORTED))
def test_kmod_builds_without_warnings(series, tmp_path):
    found = _trees()
    if not found:
        pytest.fail(f"no supported kernel headers under {SRC_ROOT}")
    if series not in found:
        pytest.skip(f"headers for {series} not installed: apt-get install "
                    f"{SUPPORTED[series]}")
    if not shutil.which("make") or not shutil.which("gcc"):
        pytest.fail("make/gcc missing: install build-essential")

    for tree in found[series]:
        build = tmp_path / tree.name
        shutil.copytree(KMOD_SRC, build,
                        ignore=shutil.ignore_patterns("*.o", "*.ko", ".*.cmd",
                                                      "*.mod*", "Module.symvers",
                                                      "modules.order"))
        proc = subprocess.run(
            ["make", f"KDIR={tree}", "W=1", "-j2"],
            cwd=build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=600, check=False,
        )
        out = proc.stdout
        assert proc.returncode == 0, f"build against {tree} failed:\n{out[-4000:]}"
        problems = _problems(out)
        assert not problems, (f"warnings building against {tree}:\n"
                              + "\n".join(problems))
        ko = build / "vhost_blk.ko"
        assert ko.exists(), f"no vhost_blk.ko after building against {tree}"
        if shutil.which("modinfo"):
            info = subprocess.run(["modinfo", "-F", "version", str(ko)],
                                  stdout=subprocess.PIPE, text=True, check=True)
            want = (KMOD_SRC / "VERSION").read_text().strip()
            assert info.stdout.strip() == want
            parms = subprocess.run(["modinfo", "-F", "parm", str(ko)],
                                   stdout=subprocess.PIPE, text=True,
                                   check=True).stdout
            for name in ("max_queues", "max_inflight", "seg_max",
                         "max_mem_regions"):
                assert re.search(rf"^{name}:\S", parms, re.M), parms


def test_dkms_conf_template():
    text = (KMOD_SRC / "dkms.conf.in").read_text()
    for needle in ('PACKAGE_NAME="vhost-blk"', 'PACKAGE_VERSION="@VERSION@"',
                   'AUTOINSTALL="yes"', 'BUILT_MODULE_NAME[0]="vhost_blk"',
                   'DEST_MODULE_LOCATION[0]="/updates/dkms"'):
        assert needle in text


def test_make_dkms_conf(tmp_path):
    if not shutil.which("make"):
        pytest.fail("make missing: install build-essential")
    build = tmp_path / "src"
    shutil.copytree(KMOD_SRC, build)
    subprocess.run(["make", "dkms.conf"], cwd=build, check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    version = (KMOD_SRC / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    conf = (build / "dkms.conf").read_text()
    assert f'PACKAGE_VERSION="{version}"' in conf
    assert "@VERSION@" not in conf


@pytest.mark.parametrize("series", sorted(SUPPORTED))
def test_kmod_sparse_clean(series, tmp_path):
    """sparse (C=2): __user/__le annotations and locking context stay clean."""
    found = _trees()
    if not found:
        pytest.fail(f"no supported kernel headers under {SRC_ROOT}")
    if series not in found:
        pytest.skip(f"headers for {series} not installed")
    if not shutil.which("sparse"):
        pytest.skip("sparse not installed: apt-get install sparse")
    tree = found[series][0]
    build = tmp_path / "src"
    shutil.copytree(KMOD_SRC, build)
    proc = subprocess.run(
        ["make", f"KDIR={tree}", "C=2", "-j2"],
        cwd=build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    checked = [line for line in proc.stdout.splitlines() if "CHECK" in line]
    assert checked, "sparse did not run:\n" + proc.stdout[-2000:]
    problems = _problems(proc.stdout)
    assert not problems, "sparse:\n" + "\n".join(problems)
