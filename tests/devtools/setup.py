# SPDX-License-Identifier: GPL-2.0-or-later
"""The ``./dev`` sub-commands: setup, test, demo."""

import os
import sys
import time

from . import hostdeps, venv

ROOT = venv.ROOT
DEFAULT_TEST_ARGS = ["-v", "-rfEs", "--durations=15"]


def _log(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def cmd_setup(_args) -> int:
    if os.geteuid() != 0:
        _log("must run as root (installs Debian packages, boots VMs, builds images)")
        return 2
    start = time.monotonic()
    hostdeps.ensure(log=_log)
    venv.ensure(log=_log)
    _log(f"setup done in {time.monotonic() - start:.0f}s")
    return 0


# ./dev test flags selecting tests the gate leaves out (deselected, never skipped):
#   --migration           tests marked migration (tests/conftest.py)
#   --kernel-upgrade      tests marked kernel_upgrade: molecule scenario kernel-upgrade
#   --debian13            tests marked debian13: molecule scenario default on a Debian 13 L1
#   --debug-kernel        tests marked debug_kernel: the module under KASAN/lockdep/kmemleak (virtme-ng)
#   --upgrade             tests marked upgrade: molecule scenario upgrade (previous release -> this one)
#   --migrate-fleet       tests marked migrate_fleet: molecule scenario migrate (two L1s, virsh migrate, drain hook)
OPT_IN_FLAGS = {"--migration": "VHOSTBLK_MIGRATION", "--kernel-upgrade": "VHOSTBLK_KERNEL_UPGRADE",
                "--debian13": "VHOSTBLK_DEBIAN13", "--debug-kernel": "VHOSTBLK_DEBUG_KERNEL",
                "--upgrade": "VHOSTBLK_UPGRADE", "--migrate-fleet": "VHOSTBLK_MIGRATE_FLEET"}


def cmd_test(args) -> int:
    """Run every test. The pytest process keeps this PID: VMs die with it, however it ends.

    ``--qemu-packages`` (ours, not pytest's): build the patched QEMU .debs first when the cache has
    none for the current series (about 50 minutes), so the tests that need them run.
    ``--migration``: also run the live-migration tests (marker ``migration``, tests/conftest.py);
    the gate deselects them (one of the first runs hung in the guest after the switch-over, see
    the note on issue 12: not stable enough to gate on yet).
    ``--kernel-upgrade``: also run molecule scenario kernel-upgrade (marker ``kernel_upgrade``):
    converge, apt installs bookworm-backports' kernel, reboot into it; too long for the gate.
    ``--debian13``: also run molecule scenario default on a Debian 13 L1 (marker ``debian13``):
    trixie's kernel, QEMU 10.0 and libvirt 11.3, without the patched QEMU part; too long for the gate.
    ``--debug-kernel``: also run the module's self-test, the ring fuzzer (1,000,000 cases) and the
    lifecycle fuzzer on a KASAN/lockdep/kmemleak kernel under virtme-ng (marker ``debug_kernel``,
    tests/host/test_debug_kernel.py); the kernel is built once (about 40 minutes) and cached.
    ``--upgrade``: also run molecule scenario upgrade (marker ``upgrade``): two L1s install the
    previous release's packages (prebuilt, dkms_deb), upgrade, roll back and go forward again.
    ``--migrate-fleet``: also run molecule scenario migrate (marker ``migrate_fleet``): two L1s on a
    peer link and a shared disk, ``virsh migrate --live`` of a writing guest with a vhost-blk disk, a
    destination without the module, and the rollout with the drain hook (a flag of its own, not
    ``--migration``: two L1s for about 45 minutes against one L1 for about 11).
    """
    rc = cmd_setup([])
    if rc:
        return rc
    env = venv.env()
    env["VHOSTBLK_OWNER_PID"] = str(os.getpid())
    env["VHOSTBLK_NO_SKIPS"] = "1"  # tests/conftest.py: a skip is a failure here
    if "--qemu-packages" in args:
        from . import qemu_packages

        args = [a for a in args if a != "--qemu-packages"]
        qemu_packages.ensure(log=_log)
        env[qemu_packages.ENV] = "1"
    for flag, var in OPT_IN_FLAGS.items():
        if flag in args:
            args = [a for a in args if a != flag]
            env[var] = "1"
    pytest = str(venv.bin_path("pytest"))
    argv = [pytest, *DEFAULT_TEST_ARGS, *args]
    _log("exec " + " ".join(argv))
    sys.stdout.flush()
    os.execve(pytest, argv, env)
    return 1  # not reached


# The demo's guest runs under TCG inside the emulated hypervisor (nested KVM there is not reliable
# enough, see vmharness/l2.py), so its fio numbers say nothing about real hardware.
DEMO_GUEST_CHECK = {"vhostblk_guest_check_domain_type": "qemu", "vhostblk_guest_check_fio_runtime": 5}


def cmd_demo(args) -> int:
    """Boot a throwaway hypervisor VM, run playbooks/site.yml against it, then playbooks/guest_check.yml
    (a guest with a vhost-blk disk writes, reads back, runs fio next to virtio-blk), clean up.

    The VM gets the signed vhost-blk package repository as a read-only disk (devtools/fleet_l1.py).
    """
    rc = cmd_setup([])
    if rc:
        return rc
    from .fleet_l1 import fleet_l1

    start = time.monotonic()
    rc = 1
    try:
        with fleet_l1("demo", _log) as l1:
            rc = l1.playbook("site.yml", args=args) or l1.playbook("guest_check.yml", DEMO_GUEST_CHECK, args)
        _log(f"demo {'succeeded' if rc == 0 else 'FAILED'} in {time.monotonic() - start:.0f}s")
        return rc
    except KeyboardInterrupt:
        _log("interrupted")
        return 130


def cmd_bench(args) -> int:
    """Benchmarks in a throwaway L1, ratios printed side by side: the engine (/dev/vhost-blk vs fio),
    or with ``guest`` first, one L2 guest's vhost-blk-pci disk vs QEMU's virtio-blk-pci."""
    rc = cmd_setup([])
    if rc:
        return rc
    from . import bench

    return bench.run(args)
