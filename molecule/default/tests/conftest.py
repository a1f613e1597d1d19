# SPDX-License-Identifier: GPL-2.0-or-later
"""Tests marked ``patched_qemu`` run only when the repository carries the patched QEMU packages,
which `./dev test --qemu-packages` builds ($VHOSTBLK_QEMU_PACKAGES=1). Otherwise they are
deselected, and counted as such, never skipped: a skip inside molecule's verify fails the outer
test (tests/vm/test_molecule.py).
"""

import os

# marker -> the environment variable (set by a ./dev test flag) that selects its tests
OPT_IN = {"patched_qemu": "VHOSTBLK_QEMU_PACKAGES"}


def pytest_configure(config):
    config.addinivalue_line("markers", "patched_qemu: needs the patched QEMU packages (./dev test --qemu-packages)")


def pytest_collection_modifyitems(config, items):
    off = [m for m, env in OPT_IN.items() if os.environ.get(env) != "1"]
    drop = [item for item in items if any(item.get_closest_marker(m) for m in off)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in drop]
