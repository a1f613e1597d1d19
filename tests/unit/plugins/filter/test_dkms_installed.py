# SPDX-License-Identifier: GPL-2.0-or-later


from ansible_collections.vhostblk.fleet.plugins.filter.dkms_installed import dkms_installed, dkms_versions

STATUS = [
    "vhost-blk/0.1.0, 6.1.0-56-amd64, x86_64: installed",
    "vhost-blk/0.1.0, 6.12.38+deb13-amd64, x86_64: installed (WARNING! Diff between built and installed module!)",
    "vhost-blk/0.1.0, 6.12.95+deb12-amd64, x86_64: built",
    "vhost-blk/0.0.9, 6.1.0-55-amd64, x86_64: installed",
    "other/1.0, 6.1.0-56-amd64, x86_64: installed",
    "vhost-blk/0.1.0: added",
]


def test_releases_with_plus_match_exactly():
    # a regex built from "6.12.38+deb13-amd64" would read "+" as a quantifier and never match
    assert dkms_installed(STATUS, "vhost-blk/0.1.0") == ["6.1.0-56-amd64", "6.12.38+deb13-amd64"]


def test_built_and_added_are_not_installed():
    assert "6.12.95+deb12-amd64" not in dkms_installed(STATUS)


def test_module_name_without_version_and_no_filter():
    assert dkms_installed(STATUS, "vhost-blk") == ["6.1.0-56-amd64", "6.12.38+deb13-amd64", "6.1.0-55-amd64"]
    assert dkms_installed(STATUS) == ["6.1.0-56-amd64", "6.12.38+deb13-amd64", "6.1.0-55-amd64"]


def test_dkms2_format():
    assert dkms_installed(["vhost-blk, 0.1.0, 6.1.0-56-amd64, x86_64: installed"], "vhost-blk/0.1.0") == [
        "6.1.0-56-amd64"]


def test_empty():
    assert dkms_installed([]) == [] and dkms_installed(None) == []


def test_versions_of_a_module_in_any_state():
    assert dkms_versions(STATUS, "vhost-blk") == ["0.1.0", "0.0.9"]
    dkms2 = ["vhost-blk, 0.0.8, 6.1.0-9-amd64, x86_64: built", "other/1.0: added"]
    assert dkms_versions(dkms2, "vhost-blk") == ["0.0.8"]
    assert dkms_versions([], "vhost-blk") == [] and dkms_versions(None, "vhost-blk") == []
