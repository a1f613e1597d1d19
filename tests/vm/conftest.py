# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures that boot the L1 test hypervisor.

``l1`` is module-scoped: each test module gets its own throwaway VM, torn down before the next
module starts (the two cores are all L1 has). The VM is owned by this pytest process, so it also
dies if pytest is killed.
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


@pytest.fixture(scope="module")
def l1(request):
    name = f"pytest-{request.module.__name__.rsplit('.', 1)[-1]}-{os.getpid()}"
    inst = create(name, base=state_dir() / "instances", owner=os.getpid(), keep_logs_in=LOGS,
                  log=lambda m: print(m, flush=True))
    try:
        yield inst
    finally:
        destroy(inst.dir)
