# SPDX-License-Identifier: GPL-2.0-or-later
"""Make tests/ importable (vmharness, devtools) however pytest is started; session fixtures for QEMU.

``patched_qemu``: path of a qemu-system-x86_64 with vhost-blk-pci ($VHOSTBLK_QEMU_BIN, else
packaging/build_qemu_minimal.py, called once per session).
``debian_qemu_source``: a function "7.2"/"10.0" -> extracted Debian source tree with Debian's
quilt series applied ($VHOSTBLK_QEMU_SRC_72 / $VHOSTBLK_QEMU_SRC_100, else fetched once into the
cache). Both fail the test with the reason when there is none: no skip.

Under ``./dev test`` ($VHOSTBLK_NO_SKIPS=1) a skipped test is reported as failed: the command
installs everything the tests need, so a skip there means a missing install step, never a pass.
"""

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from devtools.setup import OPT_IN_FLAGS  # noqa: E402 (needs tests/ on sys.path)

# qemu-patches/<version> -> environment variable naming a prepared Debian source tree
QEMU_SRC_ENV = {"7.2": "VHOSTBLK_QEMU_SRC_72", "10.0": "VHOSTBLK_QEMU_SRC_100"}


@pytest.fixture(scope="session")
def patched_qemu():
    from devtools.patched_qemu import patched_qemu as find

    try:
        return find()
    except RuntimeError as exc:
        pytest.fail(f"no patched QEMU: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def debian_qemu_source():
    from devtools.qemu_sources import source_tree

    trees = {}

    def get(version):
        if version not in trees:
            override = os.environ.get(QEMU_SRC_ENV[version])
            try:
                trees[version] = Path(override) if override else source_tree(version)
            except RuntimeError as exc:
                trees[version] = exc
        if isinstance(trees[version], RuntimeError):
            pytest.fail(f"no Debian qemu source for {version}: {trees[version]}", pytrace=False)
        return trees[version]

    return get


NO_SKIPS = os.environ.get("VHOSTBLK_NO_SKIPS") == "1"

# marker -> (the ./dev test flag that selects its tests, what it marks)
OPT_IN_MARKERS = {
    "migration": ("--migration", "live-migration tests"),
    "kernel_upgrade": ("--kernel-upgrade", "molecule scenario kernel-upgrade (about 30 minutes)"),
    "debian13": ("--debian13", "molecule scenario default on a Debian 13 L1 (about 30 minutes)"),
    "upgrade": ("--upgrade", "molecule scenario upgrade: previous release, upgrade, rollback (about 30 minutes)"),
    "migrate_fleet": ("--migrate-fleet", "molecule scenario migrate: virsh migrate --live between two L1 hypervisors "
                      "and the rollout's drain hook (about 45 minutes)"),
    "debug_kernel": ("--debug-kernel", "the module under a KASAN/lockdep/kmemleak kernel in virtme-ng (the first run "
                     "builds that kernel: about 40 minutes)"),
}


def pytest_configure(config):
    for marker, (flag, what) in OPT_IN_MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {what}, run with `./dev test {flag}`")


def pytest_collection_modifyitems(config, items):
    """Tests with an opt-in marker are deselected (counted as such, never skipped) unless its
    ./dev test flag set the flag's variable (tests/devtools/setup.py OPT_IN_FLAGS) to 1."""
    off = [m for m, (flag, _what) in OPT_IN_MARKERS.items() if os.environ.get(OPT_IN_FLAGS[flag]) != "1"]
    drop = [item for item in items if any(item.get_closest_marker(m) for m in off)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in drop]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped under ./dev test ({reason}): the test command installs what every test "
                           "needs, so this skip is a missing install step")
    return report


_EVIDENCE = []


@pytest.fixture(scope="session")
def evidence():
    """``evidence(line)``: a measured fact (checksums, timings, counts) printed in the run's
    closing summary, so CI output shows what the passing tests saw, not only that they passed."""
    def add(line: str) -> None:
        _EVIDENCE.append(str(line))
        print(line, flush=True)
    return add


def pytest_terminal_summary(terminalreporter):
    if _EVIDENCE:
        terminalreporter.section("evidence (what the tests measured)")
        for line in _EVIDENCE:
            terminalreporter.write_line(line)
