# SPDX-License-Identifier: GPL-2.0-or-later
"""The patched QEMU from the repository, and the libvirt guest defined by converge whose
vhost-blk disk was added with vhostblk.fleet.disk (run by `./dev test --qemu-packages`)."""

import os
import re

import pytest
import testinfra.utils.ansible_runner
from libvirt_guest import console_value, run_guest

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


# Every test here needs the patched QEMU packages in the repository: conftest.py deselects them
# unless `./dev test --qemu-packages` built them (a 50-minute build the gate cannot afford).
pytestmark = pytest.mark.patched_qemu


@pytest.fixture(autouse=True)
def _repository_has_patched_qemu(host):
    assert host.file("/mnt/vhostblk-repo/vhostblk-qemu.pref").exists, \
        "the package repository carries no patched QEMU although --qemu-packages was given"


def test_patched_qemu_installed_and_pinned(host):
    policy = host.check_output("apt-cache policy qemu-system-x86")
    installed = re.search(r"Installed: (\S+)", policy).group(1)
    assert "+vhostblk" in installed, policy
    assert "vhost-blk-pci" in host.check_output("qemu-system-x86_64 -nodefaults -machine none -device help")
    pref = host.file("/etc/apt/preferences.d/vhostblk-qemu.pref")
    assert pref.contains("^Pin: release o=vhostblk-local$") and pref.contains("^Pin-Priority: 500$")
    assert re.search(r"\+vhostblk\d+ 500\n", policy), policy  # our origin at Debian's priority


def test_vhost_blk_disk_defined_through_the_module(host):
    xml = host.check_output("virsh -c qemu:///system dumpxml --inactive guest1")
    assert "vhost-blk-pci,id=vblk0,drive=/var/lib/vhost-blk/guest1.raw" in xml, xml
    assert "xmlns:qemu=" in xml


SERIAL = "/var/log/libvirt/qemu/guest1-serial.log"
BACKING = "/var/lib/vhost-blk/guest1.raw"


def test_libvirt_guest_does_io_through_vhost_blk(host):
    """Start guest1 through libvirt (AppArmor profile, cgroup device ACL, private /dev and all):
    its only disk is the vhost-blk-pci device; it writes 8 MiB of random data, flushes, drops its
    caches and reads them back. The backing file on L1 must hold exactly what the guest wrote."""
    console = run_guest(host, "guest1", SERIAL)
    qemu_log = host.file("/var/log/libvirt/qemu/guest1.log").content_string
    assert "vhost-blk-pci" in qemu_log  # the command line libvirt ran
    assert console_value(console, "QUEUES") == "2", console[-3000:]
    guest_sha = console_value(console, "GUEST-SHA")
    readback_sha = console_value(console, "READBACK-SHA")
    backing_sha = host.check_output(f"head -c 8M {BACKING} | sha256sum").split()[0]
    print(f"guest wrote   {guest_sha}\nguest read    {readback_sha}\nbacking file  {backing_sha}")
    assert guest_sha and guest_sha == readback_sha == backing_sha
