# SPDX-License-Identifier: GPL-2.0-or-later
"""Teardown guarantees, checked with a fake qemu: no VM outlives its run, however the run ends."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_image import fake_image
from vmharness import HarnessError, proc
from vmharness.instance import Instance, create, destroy
from vmharness.supervisor import RUNTIME, STATE

TESTS = Path(__file__).resolve().parents[1]

FAKE_QEMU = """#!{python}
import sys, time
argv = sys.argv
serial = argv[argv.index("-serial") + 1].split(":", 1)[1]
with open(serial, "w") as f:
    f.write("FAKE-SERIAL-MARKER booting\\nKernel panic - not really\\n")
time.sleep(3600)
"""


@pytest.fixture
def fake_qemu(tmp_path, monkeypatch):
    path = tmp_path / "fake-qemu"
    path.write_text(FAKE_QEMU.format(python=sys.executable))
    path.chmod(0o755)
    monkeypatch.setenv("VHOSTBLK_QEMU", str(path))
    return path


def _start_supervised(inst_dir: Path, fake: Path, owner=None) -> Instance:
    inst_dir.mkdir(parents=True)
    argv = [str(fake), "-serial", f"file:{inst_dir / 'serial.log'}", str(inst_dir / "overlay.qcow2")]
    (inst_dir / STATE).write_text(json.dumps({"argv": argv, "ssh_port": 1, "key": "/none", "owner": owner}))
    subprocess.Popen([sys.executable, "-m", "vmharness.supervisor", str(inst_dir)], start_new_session=True,
                     env={**os.environ, "PYTHONPATH": str(TESTS)})
    inst = Instance(inst_dir)
    assert proc.wait_until((inst_dir / RUNTIME).exists), "supervisor did not start the fake qemu"
    assert proc.wait_until(inst.qemu_alive)
    return inst


def test_owner_killed_with_sigkill_takes_the_vm_down(tmp_path, fake_qemu):
    owner = subprocess.Popen(["sleep", "600"])
    inst = _start_supervised(tmp_path / "i1", fake_qemu, owner=proc.identity(owner.pid))
    qemu_id = inst.runtime()["qemu"]
    owner.kill()
    owner.wait()
    assert proc.wait_until(lambda: not proc.alive(qemu_id)), "qemu survived its owner"
    assert proc.wait_until(lambda: not inst.dir.exists()), "overlay/instance directory left behind"


def test_supervisor_killed_takes_qemu_with_it(tmp_path, fake_qemu):
    inst = _start_supervised(tmp_path / "i2", fake_qemu)
    rt = inst.runtime()
    os.kill(rt["supervisor"][0], signal.SIGKILL)
    assert proc.wait_until(lambda: not proc.alive(rt["qemu"])), "qemu survived a SIGKILLed supervisor (pdeathsig)"
    destroy(inst.dir)
    assert not inst.dir.exists()


def test_destroy_stops_qemu_and_removes_overlay(tmp_path, fake_qemu):
    inst = _start_supervised(tmp_path / "i3", fake_qemu)
    qemu_id = inst.runtime()["qemu"]
    destroy(inst.dir)
    assert not proc.alive(qemu_id)
    assert not inst.dir.exists()
    assert not proc.pids_with_arg(str(inst.dir / "overlay.qcow2"))


def test_boot_timeout_is_clear_and_cleans_up(tmp_path, fake_qemu):
    with pytest.raises(HarnessError) as err:
        create("t-timeout", base=tmp_path / "inst", image=fake_image(tmp_path), boot_timeout=4, log=lambda m: None)
    msg = str(err.value)
    assert "did not answer SSH" in msg and "FAKE-SERIAL-MARKER" in msg, msg
    assert not (tmp_path / "inst" / "t-timeout").exists()
    assert not proc.pids_with_arg(str(tmp_path / "inst" / "t-timeout"))


def test_qemu_dying_during_boot_fails_fast(tmp_path, monkeypatch):
    fake = tmp_path / "dying-qemu"
    fake.write_text("#!/bin/sh\necho 'qemu-system-x86_64: cannot set up guest memory' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VHOSTBLK_QEMU", str(fake))
    start = time.monotonic()
    with pytest.raises(HarnessError, match="qemu exited during boot|cannot set up guest memory|did not answer"):
        create("t-dies", base=tmp_path / "inst", image=fake_image(tmp_path), boot_timeout=60, log=lambda m: None)
    assert time.monotonic() - start < 30
    assert not (tmp_path / "inst" / "t-dies").exists()


@pytest.mark.parametrize("ignored", [False, True], ids=["default", "inherited-ignore"])
def test_catches_tells_whether_ctrl_c_reaches_python(ignored):
    """The Ctrl-C teardown test relies on proc.catches: a Python started with SIGINT ignored (as a
    shell starts background jobs) installs no handler and never raises KeyboardInterrupt."""
    disposition = signal.SIG_IGN if ignored else signal.SIG_DFL
    child = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    try:
        child.stdout.readline()  # the interpreter is up and has set its handlers
        assert proc.catches(child.pid, signal.SIGINT) is not ignored
    finally:
        child.kill()
        child.wait()
