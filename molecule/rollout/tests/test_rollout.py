# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify the rollout: the canary host is done, the busy host got only the module (nothing else
changed under its VM) and was reported; a failing canary stops the rollout with a summary."""

import json
import os
from pathlib import Path

import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SUMMARY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rollout-summary.json"
FAILED_CANARY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rollout-failed-canary.json"


def test_summary_reports_done_and_busy():
    summary = json.loads(SUMMARY.read_text())
    assert summary == {"done": ["hv1"], "busy (module only)": ["hv2"]}, summary


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


def test_busy_host_left_alone():
    host = _host("hv2")
    # the device is still held by the stand-in VM, and the rollout changed nothing but the module
    assert host.service("vhostblk-holder").is_running
    assert int(host.file("/sys/module/vhost_blk/refcnt").content_string) > 0
    # prepare gave hv2 mode 0600; the rollout would have made it 0660
    assert 'MODE="0600"' in host.file("/etc/udev/rules.d/65-vhost-blk.rules").content_string
    assert host.check_output("stat -c '%%a' %s", "/dev/vhost-blk") == "600"
