# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures that boot the L1 test hypervisor.

Two session-scoped L1s, each shared by the test modules that use it (an L1 boot and its set-up
cost minutes under TCG): ``l1``, a plain test hypervisor, and ``vhostblk_hv``, one with the
vhost-blk packages from the repository disk and the patched QEMU. The VM tests run grouped by the
L1 they use, and an L1 is stopped as soon as the next test does not use it (two cores: one VM at a
time). The VMs are owned by this pytest process, so they also die if pytest is killed.
"""

import os
from contextlib import ExitStack
from pathlib import Path

import pytest
from vmharness.instance import create, destroy
from vmharness.l1_vhostblk import vhostblk_l1
from vmharness.paths import REPO_ROOT, state_dir

LOGS = Path(os.environ.get("VHOSTBLK_LOG_DIR", REPO_ROOT / "tests" / "output" / "vm-logs"))


SHARED_L1S = ("vhostblk_hv", "l1")  # the order the VM tests run in: by the shared L1 they use
_SHARED = {}


def l1_group(item) -> int:
    """The position of ``item``'s shared L1 in SHARED_L1S; tests without one run last."""
    return next((i for i, name in enumerate(SHARED_L1S) if name in item.fixturenames), len(SHARED_L1S))


def pytest_collection_modifyitems(items):
    vm = [i for i, item in enumerate(items) if "tests/vm/" in str(item.fspath)]
    for item in (items[i] for i in vm):
        item.add_marker(pytest.mark.vm)
    # a stable sort of the VM tests among themselves keeps each module's own order
    for i, item in zip(vm, sorted((items[i] for i in vm), key=l1_group)):
        items[i] = item


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the item's own teardown: stop each shared L1 the next test does not use."""
    result = yield
    for name in list(_SHARED):
        if nextitem is None or name not in nextitem.fixturenames:
            release_shared(name)
    return result


@pytest.fixture(scope="session")
def l1():
    """One throwaway plain L1 shared by the test modules that use this fixture (one boot, not one
    per module)."""
    name = f"pytest-l1-{os.getpid()}"
    inst = create(name, base=state_dir() / "instances", owner=os.getpid(), keep_logs_in=LOGS,
                  log=lambda m: print(m, flush=True))
    _SHARED["l1"] = lambda: destroy(inst.dir)
    try:
        yield inst
    finally:
        release_shared("l1")


@pytest.fixture(scope="session")
def vhostblk_hv(tmp_path_factory):
    """One L1 with the vhost-blk module loaded from the signed repository disk and the patched QEMU
    in /usr/local (tests/vmharness/l1_vhostblk.py), shared by the guest I/O and vhost-user modules."""
    with ExitStack() as stack:
        inst = stack.enter_context(vhostblk_l1(f"pytest-vhostblk-{os.getpid()}", tmp_path_factory.mktemp("repo"),
                                               log=lambda m: print(m, flush=True)))
        _SHARED["vhostblk_hv"] = stack.pop_all().close
        try:
            yield inst
        finally:
            release_shared("vhostblk_hv")


@pytest.fixture(scope="module")
def hv(vhostblk_hv):
    """The guest tests' name for the shared L1 with the module and the patched QEMU."""
    return vhostblk_hv


def release_shared(name):
    """Stop the shared L1 ``name`` now (it is stopped once, whoever asks first)."""
    stop = _SHARED.pop(name, None)
    if stop is not None:
        stop()
