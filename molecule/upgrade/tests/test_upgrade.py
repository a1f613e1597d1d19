# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify the upgrade scenario's end state: every host back on this release after the rollback and
``vhostblk_kmod_state: latest``, nothing of the previous release left, the module working."""

import json
import os
from pathlib import Path

UPGRADE = json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "upgrade.json").read_text())


def _module_version(package_version):
    return package_version.split(":", 1)[-1].split("+k", 1)[0]


def test_loaded_module_is_this_release(host):
    assert host.file("/sys/module/vhost_blk/version").content_string.strip() == UPGRADE["current"]
    # the module file on disk is the one loaded (no reload pending)
    loaded = host.file("/sys/module/vhost_blk/srcversion").content_string.strip()
    assert host.check_output("modinfo -F srcversion vhost_blk").strip() == loaded


def test_every_vhost_blk_package_is_this_release(host):
    out = host.check_output("dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n' 'vhost-blk-*'")
    installed = {f[1]: f[2] for f in (line.split() for line in out.splitlines()) if f[0] == "ii"}
    assert installed, out
    old = {name: v for name, v in installed.items() if _module_version(v) != UPGRADE["current"]
           and name != "vhost-blk-module-cert"}
    assert not old, f"packages not at {UPGRADE['current']}: {old}"


def test_dkms_has_this_release_only(host):
    if not host.exists("dkms"):
        assert host.ansible.get_variables()["vhostblk_kmod_install_method"] == "prebuilt"
        return
    status = host.check_output("dkms status vhost-blk")
    versions = {line.split(",")[0].split("/")[-1] for line in status.splitlines() if line.strip()}
    if host.ansible.get_variables()["vhostblk_kmod_install_method"] == "dkms_deb":
        assert versions == {UPGRADE["current"]}, status
    else:
        assert not versions, status
    assert not host.file(f"/usr/src/vhost-blk-{UPGRADE['previous']}").exists


def test_device_node_after_the_last_step(host):
    assert host.check_output("stat -c '%F %G %a' /dev/vhost-blk") == "character special file kvm 660"
