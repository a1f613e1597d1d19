# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify the hypervisor after the kernel upgrade, the reboot and the second converge (testinfra)."""

import os
from pathlib import Path

import testinfra.utils.ansible_runner

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
VERSION = (REPO / "kmod-src" / "VERSION").read_text().strip()

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def _kernels(host):
    return sorted(f.removeprefix("vmlinuz-") for f in host.file("/boot").listdir() if f.startswith("vmlinuz-"))


def test_runs_the_newest_kernel_from_backports(host):
    running = host.check_output("uname -r")
    assert running.startswith("6.12.") and "+" in running, running
    assert host.check_output("readlink -e /vmlinuz") == f"/boot/vmlinuz-{running}"


def test_dkms_installed_for_every_kernel(host):
    kernels = _kernels(host)
    assert len(kernels) == 2 and kernels[0].startswith("6.1."), kernels  # Debian 12's and backports'
    for kernel in kernels:
        status = host.check_output("dkms status -m vhost-blk/%s -k %s", VERSION, kernel)
        assert status.endswith(": installed"), status


def test_loaded_module_is_the_dkms_build_for_the_running_kernel(host):
    running = host.check_output("uname -r")
    path = host.check_output("modinfo -n vhost_blk")
    assert path.startswith(f"/lib/modules/{running}/updates/dkms/vhost_blk.ko"), path  # .ko or .ko.xz
    assert host.file("/sys/module/vhost_blk/version").content_string.strip() == VERSION
    assert (host.file("/sys/module/vhost_blk/srcversion").content_string.strip()
            == host.check_output("modinfo -F srcversion vhost_blk"))


def test_default_install_method_dkms_source(host):
    """No package carries the module: the role put the collection's source under /usr/src."""
    assert host.file(f"/usr/src/vhost-blk-{VERSION}/dkms.conf").exists
    assert not host.package("vhost-blk-dkms").is_installed
    assert host.package("linux-headers-amd64").is_installed  # put back by the role (prepare removed it)


def test_loaded_at_boot_with_the_roles_own_entries(host):
    """dkms_source has no package shipping modules-load.d and udev files: the role writes its own."""
    assert "vhost_blk" in host.file("/etc/modules-load.d/vhost-blk.conf").content_string
    assert "Inserted module 'vhost_blk'" in host.check_output(
        "journalctl -b -t systemd-modules-load --no-pager -o cat")  # by identifier: -u misses early messages
    assert 'GROUP="kvm"' in host.file("/etc/udev/rules.d/65-vhost-blk.rules").content_string
    kind, group, mode = host.check_output("stat -c '%%F|%%G|%%a' /dev/vhost-blk").split("|")
    assert (kind, group, mode) == ("character special file", "kvm", "660")


def test_no_kernel_warnings(host):
    dmesg = host.check_output("dmesg")
    for bad in ("BUG:", "WARNING:", "Oops", "general protection"):
        assert bad not in dmesg, dmesg[-3000:]
