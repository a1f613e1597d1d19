# SPDX-License-Identifier: GPL-2.0-or-later
"""The ``./dev`` sub-commands: setup, test, demo."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def cmd_test(args) -> int:
    """Run every test. The pytest process keeps this PID: VMs die with it, however it ends."""
    rc = cmd_setup([])
    if rc:
        return rc
    env = venv.env()
    env["VHOSTBLK_OWNER_PID"] = str(os.getpid())
    pytest = str(venv.bin_path("pytest"))
    argv = [pytest, *DEFAULT_TEST_ARGS, *args]
    _log("exec " + " ".join(argv))
    sys.stdout.flush()
    os.execve(pytest, argv, env)
    return 1  # not reached


def cmd_demo(args) -> int:
    """Boot a throwaway hypervisor VM, run playbooks/site.yml against it, print what it did, clean up."""
    rc = cmd_setup([])
    if rc:
        return rc
    sys.path.insert(0, str(ROOT / "tests"))
    from vmharness.instance import create, destroy

    env = venv.env()
    name = f"demo-{os.getpid()}"
    inst = None
    start = time.monotonic()
    try:
        inst = create(name, owner=os.getpid(), log=_log)
        with tempfile.TemporaryDirectory(prefix="vhostblk-demo-") as tmp:
            inventory = Path(tmp) / "inventory.ini"
            hostvars = " ".join(f"{k}='{v}'" for k, v in inst.ansible_host_vars().items())
            inventory.write_text(f"[hypervisors]\nl1-demo {hostvars}\n")
            _log(f"running playbooks/site.yml against L1 {name} (inventory {inventory})")
            res = subprocess.run([str(venv.bin_path("ansible-playbook")), "-i", str(inventory),
                                  str(ROOT / "playbooks" / "site.yml"), *args], env=env, check=False)
        _log(f"demo {'succeeded' if res.returncode == 0 else 'FAILED'} in {time.monotonic() - start:.0f}s")
        return res.returncode
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    finally:
        if inst is not None:
            destroy(inst.dir)
            _log(f"L1 {name} destroyed")
