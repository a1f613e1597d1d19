# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify playbooks/remove.yml: the host is as before vhost-blk, the domains have native disks."""

import xml.etree.ElementTree as ET

import pytest

WRITTEN = ["/etc/udev/rules.d/65-vhost-blk.rules", "/etc/modules-load.d/vhost-blk.conf",
           "/etc/modprobe.d/vhost-blk.conf", "/etc/vhost-blk", "/usr/local/lib/vhostblk-fleet",
           "/etc/apt/sources.list.d/vhostblk-fleet.list", "/usr/share/keyrings/vhostblk-fleet.gpg",
           "/etc/apt/preferences.d/vhostblk-qemu.pref"]


def test_module_unloaded_and_no_package_left(host):
    assert not host.file("/sys/module/vhost_blk").exists
    assert not host.file("/dev/vhost-blk").exists
    left = host.run("dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' 'vhost-blk*'").stdout
    assert not [line for line in left.splitlines() if line.startswith(("ii", "rc", "iU"))], left


def test_packages_as_before(host):
    now = host.check_output("dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' | awk '$1 == \"ii\" "
                            "{print $2}' | sort")
    before = host.file("/var/tmp/before-packages").content_string
    added, gone = set(now.split()) - set(before.split()), set(before.split()) - set(now.split())
    assert not added and not gone, f"installed since: {sorted(added)}; removed since: {sorted(gone)}"


def test_libvirt_and_apparmor_config_as_before(host):
    now = host.check_output("cat /etc/libvirt/qemu.conf /etc/apparmor.d/local/abstractions/libvirt-qemu "
                            "2>/dev/null | sha256sum")
    assert now.strip() == host.file("/var/tmp/before-config").content_string.strip()


@pytest.mark.parametrize("path", WRITTEN)
def test_written_files_gone(host, path):
    assert not host.file(path).exists


def test_no_back_end_left(host):
    units = host.check_output("systemctl list-units --all --plain --no-legend 'vhost-blk-user@*' || true")
    assert "vhost-blk-user@" not in units, units


def _disks(host, name):
    root = ET.fromstring(host.check_output(f"virsh -c qemu:///system dumpxml --inactive {name}"))
    assert root.find("metadata") is None or "vhostblk" not in ET.tostring(root.find("metadata"), encoding="unicode")
    assert root.find("memoryBacking") is None, "the shared memory the vhost-user disk needed went with it"
    return root.findall("./devices/disk")


def test_new_disk_given_back_as_virtio_blk(host):
    (disk,) = _disks(host, "rm1")
    assert disk.get("type") == "file" and disk.find("source").get("file") == "/var/lib/vhost-blk/rm1.raw"
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    assert disk.find("serial").text == "rm1-data"


def test_converted_disk_gets_its_original_back(host):
    (disk,) = _disks(host, "rm2")
    assert disk.get("type") == "file" and disk.find("source").get("file") == "/var/lib/vhost-blk/rm2.raw"
    assert disk.find("target").get("dev") == "vdb" and disk.find("driver").get("cache") is None
