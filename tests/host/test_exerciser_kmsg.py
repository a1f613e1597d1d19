# SPDX-License-Identifier: GPL-2.0-or-later
"""The fuzzer's kernel-log filter flags oopses and nothing else."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from vhostblk.kmsg import BAD  # noqa: E402


@pytest.mark.parametrize("line", [
    "BUG: KASAN: slab-out-of-bounds in vblk_vq_walk+0x1a/0x200 [vhost_blk]",
    "WARNING: CPU: 1 PID: 123 at drivers/vhost/blk.c:42 vblk_req_put+0x10/0x20",
    "general protection fault, probably for non-canonical address 0xdead000000000100",
    "Oops: 0000 [#1] PREEMPT SMP NOPTI",
    "kernel BUG at mm/slub.c:379!",
    "BUG: stack guard page was hit at 00000000a1b2c3d4",
    "UBSAN: shift-out-of-bounds in req.c:200:10",
    "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [vhost-blk-1.0:99]",
    "INFO: task vhost-blk-1.0:99 blocked for more than 120 seconds.",
    "refcount_t: underflow; use-after-free.",
    "WARNING: possible circular locking dependency detected",
    "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:283",
    "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
])
def test_flags_kernel_problems(line):
    assert BAD.search(line)


@pytest.mark.parametrize("line", [
    "vhost_blk: queue 0 broken: request without a status byte",
    "vblk_vq_set_broken: 4 callbacks suppressed",
    "vhost_blk: version 0.1.0, abi 1",
    "loop0: detected capacity change from 0 to 131072",
])
def test_ignores_normal_messages(line):
    assert not BAD.search(line)
