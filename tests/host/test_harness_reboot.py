# SPDX-License-Identifier: GPL-2.0-or-later
"""The harness reboot (vmharness/reboot.py) without a VM: the command line it boots next, and the
supervisor starting QEMU again, with a fake qemu, only when a reboot was requested."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vmharness import HarnessError, proc
from vmharness.instance import Instance, destroy
from vmharness.reboot import with_boot_files
from vmharness.supervisor import REBOOT_REQUEST, RUNTIME, STATE

TESTS = Path(__file__).resolve().parents[1]

# writes its boot's name to the console log, exits 0 when told to (a guest shutting down)
FAKE_QEMU = """#!{python}
import os, sys, time
argv = sys.argv
serial = argv[argv.index("-serial") + 1].split(":", 1)[1]
with open(serial, "w") as f:
    f.write("booted " + argv[argv.index("-kernel") + 1] + "\\n")
while not os.path.exists("exit-now"):
    time.sleep(0.05)
os.unlink("exit-now")
sys.exit(0)
"""


def test_with_boot_files_replaces_kernel_and_initrd_only():
    argv = ["qemu", "-kernel", "/c/vmlinuz", "-initrd", "/c/initrd.img", "-append", "root=/dev/vda"]
    assert with_boot_files(argv, Path("/i/vmlinuz-6.12"), Path("/i/initrd.img-6.12")) == [
        "qemu", "-kernel", "/i/vmlinuz-6.12", "-initrd", "/i/initrd.img-6.12", "-append", "root=/dev/vda"]
    assert argv[2] == "/c/vmlinuz"  # not modified in place
    with pytest.raises(HarnessError, match="no -initrd"):
        with_boot_files(["qemu", "-kernel", "k"], Path("k2"), Path("i2"))


@pytest.fixture
def supervised(tmp_path):
    fake = tmp_path / "fake-qemu"
    fake.write_text(FAKE_QEMU.format(python=sys.executable))
    fake.chmod(0o755)
    inst_dir = tmp_path / "i"
    inst_dir.mkdir()
    argv = [str(fake), "-kernel", "old-kernel", "-serial", f"file:{inst_dir / 'serial.log'}"]
    (inst_dir / STATE).write_text(json.dumps({"argv": argv, "ssh_port": 1, "key": "/none", "owner": None}))
    subprocess.Popen([sys.executable, "-m", "vmharness.supervisor", str(inst_dir)], start_new_session=True,
                     env={**os.environ, "PYTHONPATH": str(TESTS)})
    inst = Instance(inst_dir)
    assert proc.wait_until((inst_dir / RUNTIME).exists), "supervisor did not start the fake qemu"
    assert proc.wait_until(inst.qemu_alive)
    yield inst
    destroy(inst_dir)


def test_requested_reboot_starts_qemu_again_with_the_new_command_line(supervised):
    inst = supervised
    first = inst.runtime()["qemu"]
    assert proc.wait_until(lambda: "old-kernel" in inst.serial_log.read_text())
    state = inst.state
    state["argv"] = with_boot_files(state["argv"] + ["-initrd", "x"], Path("new-kernel"), Path("new-initrd"))
    (inst.dir / STATE).write_text(json.dumps(state))
    (inst.dir / REBOOT_REQUEST).write_text("6.12\n")
    (inst.dir / "exit-now").touch()
    assert proc.wait_until(lambda: inst.runtime().get("qemu") not in (None, first)), "qemu was not started again"
    assert not proc.alive(first) and inst.qemu_alive()
    assert proc.wait_until(lambda: inst.serial_log.exists() and "new-kernel" in inst.serial_log.read_text())
    assert "old-kernel" in (inst.dir / "serial.boot1.log").read_text()  # the first boot's console kept
    assert not (inst.dir / REBOOT_REQUEST).exists()
    assert inst.dir.is_dir()


def test_exit_without_a_request_ends_the_vm(supervised):
    inst = supervised
    first = inst.runtime()["qemu"]
    (inst.dir / "exit-now").touch()
    assert proc.wait_until(lambda: not proc.alive(inst.runtime()["supervisor"])), "supervisor kept running"
    assert not proc.alive(first)
    time.sleep(0.2)
    assert inst.runtime()["qemu"] == first  # not started again
    assert "stopping: qemu exited with status 0" in (inst.dir / "supervisor.log").read_text()
