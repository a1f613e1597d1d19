# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures that boot the L1 test hypervisor.

``l1`` is session-scoped: the modules that use it share one throwaway VM (an L1 boot costs
minutes under TCG). The VM is owned by this pytest process, so it also dies if pytest is killed.
"""

import os
from pathlib import Path

import pytest
from vmharness.instance import create, destroy
from vmharness.paths import REPO_ROOT, state_dir

LOGS = Path(os.environ.get("VHOSTBLK_LOG_DIR", REPO_ROOT / "tests" / "output" / "vm-logs"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)


_SHARED = {}


@pytest.fixture(scope="session")
def l1():
    """One throwaway L1 shared by the test modules that use this fixture (one boot, not one per
    module); ``release_shared_l1()`` stops it early when a later module needs the CPUs."""
    name = f"pytest-l1-{os.getpid()}"
    inst = create(name, base=state_dir() / "instances", owner=os.getpid(), keep_logs_in=LOGS,
                  log=lambda m: print(m, flush=True))
    _SHARED["l1"] = inst
    try:
        yield inst
    finally:
        release_shared_l1()


def release_shared_l1():
    inst = _SHARED.pop("l1", None)
    if inst is not None:
        destroy(inst.dir)


@pytest.fixture()
def no_shared_l1():
    """For tests that boot their own VMs: stop the shared L1 first (two cores for everyone)."""
    release_shared_l1()
