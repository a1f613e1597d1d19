# SPDX-License-Identifier: GPL-2.0-or-later


from ansible_collections.vhostblk.fleet.plugins.filter.kmod_packages import kmod_module_version, kmod_package_specs

PREFIX = "vhost-blk-modules-"


def test_specs_pin_each_package_the_way_it_is_versioned():
    names = ["vhost-blk-modules-6.1.0-56-amd64", "vhost-blk-modules-amd64", "vhost-blk-tools", "vhost-blk-dkms"]
    assert kmod_package_specs(names, "0.2.0", PREFIX) == [
        "vhost-blk-modules-6.1.0-56-amd64=0.2.0+k*", "vhost-blk-modules-amd64=0.2.0+k*",
        "vhost-blk-tools=0.2.0", "vhost-blk-dkms=0.2.0"]


def test_no_version_leaves_the_names_alone():
    assert kmod_package_specs(["vhost-blk-dkms"], "", PREFIX) == ["vhost-blk-dkms"]
    assert kmod_package_specs(None, "0.1.0", PREFIX) == []


def test_module_version_of_package_versions():
    assert kmod_module_version("0.1.0") == "0.1.0"
    assert kmod_module_version("0.2.0+k6.1.192.2") == "0.2.0"
    assert kmod_module_version("1:0.2.0+k6.12.95.1~bpo12") == "0.2.0"
    assert kmod_module_version("0.1.0~rc1") == "0.1.0~rc1"
    assert kmod_module_version("") == "" and kmod_module_version(None) == ""
