# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify the rollout: the canary host is done; the busy host, which uses another build of the
module, got only the module (nothing else changed under its VM: side_effect.yml asserts that while
the device is held) and was reported as "reload pending"; a failing canary stops the rollout with a
summary; once the busy host's device is released, the next rollout converges it and loads the
installed module."""

import json
import os
from pathlib import Path

import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SUMMARY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rollout-summary.json"
FAILED_CANARY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rollout-failed-canary.json"
AFTER_RELEASE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rollout-after-release.json"


def test_summary_reports_done_and_reload_pending():
    summary = json.loads(SUMMARY.read_text())
    assert summary == {"done": ["hv1"], "reload pending": ["hv2"]}, summary


def test_failing_canary_stops_the_rollout_and_still_reports():
    """The side effect's rollout: the canary fails, the later batch is not attempted, the summary
    is written all the same."""
    summary = json.loads(FAILED_CANARY.read_text())
    assert summary == {"failed": ["hv1"], "not attempted": ["hv2"]}, summary


def _host(name):
    """One named platform (these checks differ per host, so they are not parametrized over all)."""
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def test_canary_converged():
    host = _host("hv1")
    assert host.file("/sys/module/vhost_blk").is_directory
    # the prebuilt package's rule grants kvm 0660 already: the role writes none of its own
    packaged = f"/lib/udev/rules.d/60-vhost-blk-modules-{host.check_output('uname -r')}.rules"
    assert 'GROUP="kvm", MODE="0660"' in host.file(packaged).content_string
    assert not host.file("/etc/udev/rules.d/65-vhost-blk.rules").exists
    assert host.check_output("stat -c '%%G %%a' %s", "/dev/vhost-blk") == "kvm 660"


def test_canary_has_the_signed_prebuilt_module_its_tools_and_the_metapackage():
    """prebuilt: the module is signed with the fleet key, whose certificate came with it; the tools and the
    flavour metapackage (it depends on this kernel's package) are installed with it."""
    host = _host("hv1")
    krel = host.check_output("uname -r")
    assert host.check_output("modinfo -F signer vhost_blk") == "vhost-blk fleet module signing key"
    cert = "/usr/share/vhost-blk/vhost-blk-modules.der"
    serial = host.check_output("openssl x509 -inform DER -in %s -noout -serial", cert).split("=", 1)[1]
    assert host.check_output("modinfo -F sig_key vhost_blk").replace(":", "") == serial
    for package in ("vhost-blk-tools", "vhost-blk-module-cert", "vhost-blk-modules-amd64",
                    f"vhost-blk-modules-{krel}"):
        assert host.package(package).is_installed, package


def test_released_host_converged_with_the_installed_module():
    summary = json.loads(AFTER_RELEASE.read_text())
    assert summary == {"done": ["hv1", "hv2"]}, summary
    host = _host("hv2")
    assert not host.service("vhostblk-holder").is_running
    loaded = host.file("/sys/module/vhost_blk/srcversion").content_string.strip()
    assert loaded == host.check_output("modinfo -F srcversion vhost_blk"), "the older build is still loaded"
    # prepare's 0600 rule is gone with the full converge: the packaged kvm 0660 rule applies
    assert not host.file("/etc/udev/rules.d/65-vhost-blk.rules").exists
    assert host.check_output("stat -c '%%G %%a' %s", "/dev/vhost-blk") == "kvm 660"
