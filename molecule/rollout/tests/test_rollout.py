# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify the rollout: the canary host is done, the busy host was left alone and reported."""

import json
import os
from pathlib import Path

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

SUMMARY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rollout-summary.json"


def test_summary_reports_done_and_busy(host):
    summary = json.loads(SUMMARY.read_text())
    assert summary.get("done") == ["hv1"], summary
    assert summary.get("skipped (busy)") == ["hv2"], summary
    assert "failed" not in summary, summary


def test_canary_converged(host):
    if host.backend.get_hostname() != "hv1":
        return
    assert host.file("/sys/module/vhost_blk").is_directory
    assert host.file("/etc/udev/rules.d/65-vhost-blk.rules").exists
    assert host.check_output("stat -c '%%G %%a' %s", "/dev/vhost-blk") == "kvm 660"


def test_busy_host_left_alone(host):
    if host.backend.get_hostname() != "hv2":
        return
    assert host.service("vhostblk-holder").is_running
    assert int(host.file("/sys/module/vhost_blk/refcnt").content_string) > 0
