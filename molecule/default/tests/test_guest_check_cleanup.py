# SPDX-License-Identifier: GPL-2.0-or-later
"""After vhostblk.fleet.guest_check (molecule side effect) nothing of its throwaway guest is left."""

import os

import testinfra.utils.ansible_runner
from libvirt_guest import VIRSH

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

NAME = "vhostblk-guest-check"


def test_guest_check_left_nothing_behind(host):
    assert host.run(f"{VIRSH} dominfo {NAME}").rc != 0, "the throwaway domain is still defined"
    assert not host.file("/var/lib/libvirt/images/vhostblk-guest-check").exists
    assert not host.file(f"/var/log/libvirt/qemu/{NAME}-serial.log").exists
    assert not host.file(f"/etc/vhost-blk/user/{NAME}-vblk0.conf").exists
    assert not host.file(f"/run/vhost-blk/{NAME}-vblk0.sock").exists
    units = host.check_output("systemctl list-units --all --no-legend 'vhost-blk-user@*'")
    assert f"{NAME}-vblk0" not in units, units
