# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify a converged hypervisor (testinfra, run by molecule verify)."""

import json
import os
import re
from pathlib import Path

import testinfra.utils.ansible_runner

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
VERSION = (REPO / "kmod-src" / "VERSION").read_text().strip()

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def test_module_loaded_with_our_version(host):
    assert host.file("/sys/module/vhost_blk").is_directory
    assert host.file("/sys/module/vhost_blk/version").content_string.strip() == VERSION


def test_dkms_installed_for_running_kernel(host):
    kernel = host.check_output("uname -r")
    status = host.check_output("dkms status -m vhost-blk/%s -k %s", VERSION, kernel)
    assert "installed" in status, status


def test_dkms_signing_is_not_configured_for_every_module(host):
    """The role passes its MOK key to its own dkms commands only; no global framework.conf.d file."""
    assert not host.file("/etc/dkms/framework.conf.d/vhost-blk-signing.conf").exists


def test_headers_metapackage_installed(host):
    """prepare removed linux-headers-amd64: the role puts it back, so that a kernel apt installs
    later (linux-image-amd64) comes with its headers and DKMS builds for it."""
    assert host.package("linux-image-amd64").is_installed
    assert host.package("linux-headers-amd64").is_installed


def test_device_node(host):
    kind, group, mode = host.check_output("stat -c '%%F|%%G|%%a' %s", "/dev/vhost-blk").split("|")
    assert kind == "character special file"
    assert group == "kvm" and mode == "660", (group, mode)  # QEMU's group only, never world accessible


def test_persisted_for_boot(host):
    # vhost-blk-dkms loads the module at boot and sets the device's group and mode: the role adds
    # no modules-load.d entry or udev rule of its own
    assert "vhost_blk" in host.file("/usr/lib/modules-load.d/vhost-blk-dkms.conf").content_string
    assert not host.file("/etc/modules-load.d/vhost-blk.conf").exists
    assert 'GROUP="kvm", MODE="0660"' in host.file("/lib/udev/rules.d/60-vhost-blk-dkms.rules").content_string
    assert not host.file("/etc/udev/rules.d/65-vhost-blk.rules").exists
    assert host.file("/etc/modprobe.d/vhost-blk.conf").exists


def test_modinfo_documents_parameters(host):
    info = host.check_output("modinfo vhost_blk")
    assert f"version:        {VERSION}" in info
    assert "parm:" in info


def test_selftest_passes(host):
    tools = "/usr/local/lib/vhostblk-fleet"
    cmd = host.run(f"f=$(mktemp /var/tmp/st.XXXX); truncate -s 16M $f; "
                   f"PYTHONPATH={tools} VHOST_BLK_UAPI_HEADER={tools}/vhost_blk.h "
                   "python3 -m vhostblk selftest --file $f --json; rc=$?; rm -f $f; exit $rc")
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    result = json.loads(cmd.stdout)
    assert result["ok"] is True, result


def test_no_kernel_warnings(host):
    dmesg = host.check_output("dmesg")
    for bad in ("BUG:", "WARNING:", "Oops", "general protection", "stack guard page"):
        assert bad not in dmesg, dmesg[-3000:]


def test_repository_source_is_signed_time_limited_and_by_hash(host):
    """The repo role's source: the repository disk has the atomic-switch layout (dists is a
    symlink into .dists/), and apt took a Release with Valid-Until and Acquire-By-Hash."""
    codename = host.system_info.codename
    assert host.file("/mnt/vhostblk-repo/dists").is_symlink
    assert host.file("/etc/apt/sources.list.d/vhostblk-fleet.list").contains(f"file:/mnt/vhostblk-repo {codename} main")
    inrelease = host.file(f"/var/lib/apt/lists/_mnt_vhostblk-repo_dists_{codename}_InRelease").content_string
    assert "\nValid-Until: " in inrelease and "\nAcquire-By-Hash: yes\n" in inrelease, inrelease[:600]
    madison = host.check_output("apt-cache madison vhost-blk-dkms")
    assert re.search(rf"\|\s*{re.escape(VERSION)}\s*\|", madison), madison
