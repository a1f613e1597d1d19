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


def pytest_configure(config):
    config.addinivalue_line("markers", "migration: live-migration tests, run with `./dev test --migration`")
    config.addinivalue_line("markers", "debian13: molecule scenario default on a Debian 13 L1, run with "
                            "`./dev test --debian13`")
    config.addinivalue_line("markers", "debug_kernel: the module under a KASAN/lockdep/kmemleak kernel in virtme-ng "
                            "(the first run builds it: about 40 minutes), run with `./dev test --debug-kernel`")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``migration`` (``debian13``, ``debug_kernel``) are deselected (counted as such, never skipped)
    unless $VHOSTBLK_MIGRATION=1 (``./dev test --migration``) ($VHOSTBLK_DEBIAN13=1, ``./dev test --debian13``;
    $VHOSTBLK_DEBUG_KERNEL=1, ``./dev test --debug-kernel``)."""
    off = [m for m, env in (("migration", "VHOSTBLK_MIGRATION"), ("debian13", "VHOSTBLK_DEBIAN13"),
                            ("debug_kernel", "VHOSTBLK_DEBUG_KERNEL"))
           if os.environ.get(env) != "1"]
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
