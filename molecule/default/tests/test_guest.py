# SPDX-License-Identifier: GPL-2.0-or-later
"""The libvirt guest defined by converge (vhost-blk disk added with vhostblk.fleet.disk) writes
and reads its disk through vhost-blk; its data must be on the backing file byte for byte."""

import os
import re
import time

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

SERIAL = "/var/log/libvirt/qemu/guest1-serial.log"
RUN = {}


def _has_patched_qemu(host):
    return host.file("/mnt/vhostblk-repo/vhostblk-qemu.pref").exists


def test_patched_qemu_installed_and_pinned(host):
    if not _has_patched_qemu(host):
        pytest.skip("the package repository carries no patched QEMU (packaging/build_qemu.py not run)")
    policy = host.check_output("apt-cache policy qemu-system-x86")
    installed = re.search(r"Installed: (\S+)", policy).group(1)
    assert "+vhostblk" in installed, policy
    assert "vhost-blk-pci" in host.check_output("qemu-system-x86_64 -nodefaults -machine none -device help")
    assert host.file("/etc/apt/preferences.d/vhostblk-qemu.pref").contains("Pin-Priority: 1001")


def test_libvirt_guest_io_through_vhost_blk(host):
    if not _has_patched_qemu(host):
        pytest.skip("the package repository carries no patched QEMU (packaging/build_qemu.py not run)")
    xml = host.check_output("virsh -c qemu:///system dumpxml guest1")
    assert "vhost-blk-pci" in xml and "qemu:commandline" in xml, xml
    host.run("rm -f %s", SERIAL)
    start = host.run("virsh -c qemu:///system start guest1")
    assert start.rc == 0, start.stderr
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if host.check_output("virsh -c qemu:///system domstate guest1").strip() == "shut off":
            break
        time.sleep(5)
    console = host.file(SERIAL).content_string
    assert "VHOSTBLK-L2-DONE rc=0" in console, console[-3000:]
    guest = re.search(r"GUEST-SHA ([0-9a-f]{64})", console).group(1)
    back = re.search(r"READBACK-SHA ([0-9a-f]{64})", console).group(1)
    queues = int(re.search(r"QUEUES (\d+)", console).group(1))
    on_l1 = host.check_output("head -c 8M /var/lib/vhost-blk/guest1.raw | sha256sum | cut -d' ' -f1")
    RUN["shas"] = (guest, on_l1)
    print(f"guest wrote {guest}, read back {back}, backing file {on_l1}, {queues} queues")
    assert queues == 2
    assert guest == back == on_l1
