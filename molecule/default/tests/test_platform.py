# SPDX-License-Identifier: GPL-2.0-or-later
"""The hypervisor under test is the distribution the scenario was asked for
($VHOSTBLK_MOLECULE_DISTRO, molecule.yml): its own kernel, QEMU and libvirt, so a Debian 13 run
can never pass on a Debian 12 L1."""

import os
import re

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

# distro -> (Debian major version, kernel release prefix, Debian QEMU upstream version, libvirt major.minor)
EXPECTED = {
    "debian12": ("12", "6.1.", "7.2", "9.0"),
    "debian13": ("13", "6.12.", "10.0", "11.3"),
}
# where the hypervisor role's AppArmor grants go: the directory libvirt's abstraction includes
# (libvirt 11.3 in Debian 13, and Debian 12's 9.0 updates), else the older local file
AA_ABSTRACTION = "/etc/apparmor.d/abstractions/libvirt-qemu"
AA_DIR_INCLUDE = "<abstractions/libvirt-qemu.d>"
AA_DIR_FILE = "/etc/apparmor.d/abstractions/libvirt-qemu.d/vhostblk-fleet"
AA_LOCAL = "/etc/apparmor.d/local/abstractions/libvirt-qemu"
MARKER = "# BEGIN vhostblk.fleet.hypervisor"
DISTRO = os.environ.get("VHOSTBLK_MOLECULE_DISTRO", "debian12")


def _upstream(host, package):
    version = host.package(package).version
    return re.match(r"(?:\d+:)?(\d+\.\d+)", version).group(1)


def test_distribution_kernel_qemu_and_libvirt(host):
    major, kernel, qemu, libvirt = EXPECTED[DISTRO]
    assert host.file("/etc/debian_version").content_string.split(".")[0].strip() == major
    release = host.check_output("uname -r")
    assert release.startswith(kernel), release
    # L1 boots the image's own kernel: its modules tree is there (DKMS builds against its headers)
    assert host.file(f"/lib/modules/{release}/kernel").is_directory
    assert host.package(f"linux-image-{release}").is_installed
    assert _upstream(host, "qemu-system-x86") == qemu
    assert _upstream(host, "libvirt-daemon") == libvirt
    print(f"platform {DISTRO}: Debian {host.file('/etc/debian_version').content_string.strip()}, "
          f"kernel {release}, qemu-system-x86 {host.package('qemu-system-x86').version}, "
          f"libvirt-daemon {host.package('libvirt-daemon').version}")


def test_apparmor_grants_where_this_libvirt_reads_them(host):
    """libvirt deprecates local/abstractions/libvirt-qemu for abstractions/libvirt-qemu.d/ (its
    abstraction says so): the grants go to the directory when the abstraction includes it, and only there."""
    reads_dir = AA_DIR_INCLUDE in host.file(AA_ABSTRACTION).content_string
    if DISTRO == "debian13":
        assert reads_dir, "libvirt 11.3's abstraction includes abstractions/libvirt-qemu.d"
    grants, other = (AA_DIR_FILE, AA_LOCAL) if reads_dir else (AA_LOCAL, AA_DIR_FILE)
    text = host.file(grants).content_string
    assert MARKER in text and "/run/vhost-blk/*.sock rw," in text, text
    assert not host.file(other).exists or MARKER not in host.file(other).content_string
    print(f"platform {DISTRO}: AppArmor grants in {grants}")
