# SPDX-License-Identifier: GPL-2.0-or-later
"""A test run killed midway leaves no VM behind, checked with the real thing.

A child pytest runs a real VM test (tests/vm/test_kmod.py, whose ``l1`` fixture boots the real
L1 image with the real qemu-system-x86_64); once its qemu runs, the child is stopped the hard
way (SIGKILL: no teardown code of the run gets to run) or by Ctrl-C (SIGINT). Within seconds
no process may still use the VM's overlay and its instance directory must be gone.
tests/host/test_harness_cleanup.py checks the same guarantees piece by piece with a fake qemu.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from vmharness import proc
from vmharness.image import build_image
from vmharness.instance import Instance, destroy
from vmharness.paths import REPO_ROOT
from vmharness.recipe import get_recipe


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_killed_test_run_leaves_no_qemu_and_no_overlay(tmp_path, sig, evidence):
    build_image(get_recipe("debian12"), log=lambda m: None)  # cached: the child must not build it
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "VHOSTBLK_OWNER_PID"}
    env.update(VHOSTBLK_STATE=str(state), VHOSTBLK_LOG_DIR=str(tmp_path / "logs"))
    # The child is a run started from a terminal: SIGINT at its default, whatever this run inherited.
    # (CI may start us with SIGINT ignored, as a shell does for background jobs; a child inheriting
    # that ignores Ctrl-C, and Python then never raises KeyboardInterrupt: the hang of issue 9.)
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/vm/test_kmod.py"], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    inst_dir = state / "instances" / f"pytest-l1-{child.pid}"
    overlay = str(inst_dir / "overlay.qcow2")
    try:
        # the supervisor's record of the qemu it started (qemu-img also names the overlay, briefly)
        inst = Instance(inst_dir)
        assert proc.wait_until(lambda: proc.alive(inst.runtime().get("qemu")), 120), \
            f"the child run never started its L1 qemu ({inst_dir})"
        qemu = inst.runtime()["qemu"]
        time.sleep(3)  # qemu is up and booting the L1 kernel
        assert proc.alive(qemu), "qemu died on its own"
        if sig == signal.SIGINT:
            assert proc.catches(child.pid, sig), "the child run does not handle SIGINT (Ctrl-C would do nothing)"
        child.send_signal(sig)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the test run was still running 60 s after {sig.name}")
        start = time.monotonic()
        gone = proc.wait_until(lambda: not proc.alive(qemu) and not proc.pids_with_arg(overlay)
                               and not inst_dir.exists(), 30)
        took = time.monotonic() - start
        assert gone, (f"after {sig.name} of the test run: qemu {qemu[0]} alive: {proc.alive(qemu)}, "
                      f"processes using the overlay: {proc.pids_with_arg(overlay)}, "
                      f"instance directory exists: {inst_dir.exists()}")
        evidence(f"teardown: test run killed with {sig.name} while its L1 booted (qemu pid {qemu[0]}): "
                 f"qemu gone and overlay removed {took:.1f}s after the run ended")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        destroy(inst_dir)  # whatever the child left: supervisor, qemu, directory
