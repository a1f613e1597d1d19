# SPDX-License-Identifier: GPL-2.0-or-later
"""Process helpers: identity that survives PID reuse, liveness, and termination."""

import os
import signal
import time
from pathlib import Path
from typing import Optional, Tuple

ProcId = Tuple[int, int]  # (pid, start time in clock ticks since boot)


def start_time(pid: int) -> Optional[int]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def identity(pid: int) -> Optional[ProcId]:
    st = start_time(pid)
    return None if st is None else (pid, st)


def alive(proc: Optional[ProcId]) -> bool:
    """True while the very process ``proc`` names runs (a reused PID does not count)."""
    if not proc:
        return False
    pid, st = proc
    if start_time(pid) != st:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def terminate(proc: Optional[ProcId], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, of exactly the process ``proc``."""
    if not alive(proc):
        return
    pid = proc[0]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(proc):
            return
        time.sleep(0.1)
    if alive(proc):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + grace
    while alive(proc) and time.monotonic() < deadline:
        time.sleep(0.1)


def catches(pid: int, sig: int) -> bool:
    """True when process ``pid`` has a handler installed for ``sig`` (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask & (1 << (sig - 1)))


def pids_with_arg(needle: str) -> list:
    """PIDs whose command line contains ``needle`` (the last-resort sweep for strays)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(needle.encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def set_pdeathsig() -> None:
    """In a child before exec: get SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def wait_until(cond, timeout: float = 10.0, step: float = 0.1) -> bool:
    """Poll ``cond()`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
