# SPDX-License-Identifier: GPL-2.0-or-later
"""The per-VM supervisor: owns one qemu process and guarantees it does not outlive its run.

``python -m vmharness.supervisor INSTANCE_DIR`` is started detached by ``create``. It starts
qemu as its child with PR_SET_PDEATHSIG (if the supervisor dies, so does qemu) and stops qemu
and deletes the instance directory (overlay, logs) when any of these happens:
- it gets SIGTERM/SIGINT/SIGHUP (``destroy``),
- the owner process named in state.json (the test run) is gone, even if it was SIGKILLed,
- the time-to-live expires (a forgotten VM cannot live forever),
- qemu exits on its own (then only the overlay goes; logs stay until ``destroy``).

The one exception is a reboot (vmharness/reboot.py): when qemu exits cleanly while
``reboot.request`` exists, the supervisor starts it again from state.json's (updated) argv on
the same overlay and keeps the previous boot's console log as ``serial.bootN.log``.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import proc

STATE = "state.json"
RUNTIME = "supervisor.json"
REBOOT_REQUEST = "reboot.request"


def _stop_requested(_signum, _frame):
    raise KeyboardInterrupt


def _start_qemu(instance_dir: Path, argv: list) -> subprocess.Popen:
    """Start qemu as our child and publish its identity (and ours) in the runtime file."""
    with open(instance_dir / "qemu.stderr", "ab") as err:
        qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                preexec_fn=proc.set_pdeathsig, cwd=instance_dir)
    runtime = {"supervisor": proc.identity(os.getpid()), "qemu": proc.identity(qemu.pid)}
    (instance_dir / (RUNTIME + ".tmp")).write_text(json.dumps(runtime))
    (instance_dir / (RUNTIME + ".tmp")).rename(instance_dir / RUNTIME)
    return qemu


def _take_reboot_request(instance_dir: Path, returncode: int) -> bool:
    """True (and the request consumed, the console log kept) when qemu's clean exit was a reboot."""
    request = instance_dir / REBOOT_REQUEST
    if returncode != 0 or not request.exists():
        return False
    request.unlink()
    serial = instance_dir / "serial.log"
    if serial.exists():
        boots = len(list(instance_dir.glob("serial.boot*.log")))
        serial.rename(instance_dir / f"serial.boot{boots + 1}.log")
    return True


def supervise(instance_dir: Path, poll: float = 0.5) -> str:
    state = json.loads((instance_dir / STATE).read_text())
    owner = tuple(state["owner"]) if state.get("owner") else None
    deadline = time.monotonic() + float(state.get("ttl", 4 * 3600))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _stop_requested)
    reason = "unknown"
    qemu = None
    qemu_exited_by_itself = False
    try:
        qemu = _start_qemu(instance_dir, state["argv"])
        while True:
            if qemu.poll() is not None and _take_reboot_request(instance_dir, qemu.returncode):
                _note(instance_dir, "qemu exited for a reboot: starting it again")
                qemu = _start_qemu(instance_dir, json.loads((instance_dir / STATE).read_text())["argv"])
                continue
            if qemu.poll() is not None:
                reason = f"qemu exited with status {qemu.returncode}"
                qemu_exited_by_itself = True
                break
            if owner and not proc.alive(owner):
                reason = f"owner process {owner[0]} is gone"
                break
            if time.monotonic() > deadline:
                reason = "time to live expired"
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        reason = "stop requested"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if qemu is not None and qemu.poll() is None:
            qemu.terminate()
            try:
                qemu.wait(timeout=5)
            except subprocess.TimeoutExpired:
                qemu.kill()
                qemu.wait()
        _record_exit(instance_dir, reason)
        if state.get("keep_logs_in"):
            _save_logs(instance_dir, Path(state["keep_logs_in"]))
        if qemu_exited_by_itself:
            # keep the logs for whoever asks why (create/destroy remove the directory); drop the disk
            (instance_dir / "overlay.qcow2").unlink(missing_ok=True)
        else:
            shutil.rmtree(instance_dir, ignore_errors=True)
    return reason


def _note(instance_dir: Path, text: str) -> None:
    try:
        with open(instance_dir / "supervisor.log", "a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} supervisor: {text}\n")
    except OSError:
        pass


def _record_exit(instance_dir: Path, reason: str) -> None:
    _note(instance_dir, f"stopping: {reason}")


def _save_logs(instance_dir: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("serial.log", "qemu.stderr", "supervisor.log"):
        src = instance_dir / name
        if src.exists():
            shutil.copyfile(src, dest / f"{instance_dir.name}-{name}")


if __name__ == "__main__":
    supervise(Path(sys.argv[1]))
