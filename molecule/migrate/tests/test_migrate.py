# SPDX-License-Identifier: GPL-2.0-or-later
"""Verify the migrate scenario: the guest wrote on across every step and every block it wrote is on
the shared backing; migrating to a host without the module failed cleanly; the rollout's drain hook
moved the guest back to hv1 and hv2 was upgraded with nothing left busy."""

import json
import os
from pathlib import Path

import testinfra

EPH = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
GUEST = "mig1"
BACKING = "/dev/disk/by-id/virtio-vhostblk-shared0"
BLOCKS = 256  # vhostblk_migrate_blocks (molecule.yml)
CHECKER = "/var/lib/vhostblk-l2/write_pattern_check.py"  # shipped by converge


def _host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def test_checkpoints_every_block_there_and_more_written_at_each():
    checkpoints = json.loads((EPH / "migrate-checkpoints.json").read_text())
    assert [(c["name"], c["host"]) for c in checkpoints] == [
        ("before any migration", "hv1"), ("after the failed migration", "hv1"),
        ("on hv2 after the migration", "hv2"), ("on hv1 after the rollout's drain", "hv1")], checkpoints
    assert all(c["ok"] and c["problem_count"] == 0 for c in checkpoints), checkpoints
    progress = [c["progress"] for c in checkpoints]
    assert progress == sorted(set(progress)), f"the guest did not write between two checkpoints: {progress}"


def test_migration_to_a_host_without_the_module_failed_cleanly():
    bad = json.loads((EPH / "migrate-bad-case.json").read_text())
    assert bad["hook_refused"] and "hv2" in bad["hook_message"], bad
    assert "vhost_blk module is not loaded there" in bad["hook_message"], bad
    assert bad["migration_failed"] and f"live migration of {GUEST} from hv1 to hv2" in bad["migration_message"], bad
    assert bad["state_on_source"] == "running", bad
    assert GUEST not in bad["hv2_domains"] and bad["hv2_backend_confs"] == [], bad
    # the destination's back end says why: no /dev/vhost-blk
    assert any("is the vhost_blk module loaded?" in line for line in bad["hv2_backend_log"]), bad


def test_rollout_drained_hv2_and_left_nothing_busy():
    summary = json.loads((EPH / "rollout-summary.json").read_text())
    assert summary == {"done": ["hv1", "hv2"]}, summary


def test_guest_runs_on_hv1_and_nowhere_else():
    hv1, hv2 = _host("hv1"), _host("hv2")
    assert hv1.check_output("virsh -c qemu:///system domstate %s", GUEST) == "running"
    assert GUEST not in hv2.check_output("virsh -c qemu:///system list --all --name").split()
    assert hv1.service(f"vhost-blk-user@{GUEST}-vblk0").is_running
    assert not hv2.file(f"/etc/vhost-blk/user/{GUEST}-vblk0.conf").exists
    assert not hv2.service(f"vhost-blk-user@{GUEST}-vblk0").is_running


def test_hv2_was_upgraded_to_the_installed_module():
    hv2 = _host("hv2")
    loaded = hv2.file("/sys/module/vhost_blk/srcversion").content_string.strip()
    assert loaded == hv2.check_output("modinfo -F srcversion vhost_blk"), "hv2 still runs the other build"


def test_guest_still_writes_and_every_block_is_there_now():
    """A last check: suspended, every block on the backing, more than at the last checkpoint; resumed."""
    hv1 = _host("hv1")
    last = json.loads((EPH / "migrate-checkpoints.json").read_text())[-1]
    hv1.run_test("test -b %s", BACKING)
    hv1.check_output("virsh -c qemu:///system suspend %s", GUEST)
    try:
        now = json.loads(hv1.check_output("python3 %s %s %s", CHECKER, BACKING, str(BLOCKS)))
    finally:
        hv1.check_output("virsh -c qemu:///system resume %s", GUEST)
    assert now["ok"], now
    assert now["progress"] > last["progress"], f"no block written since the last checkpoint: {now}, {last}"


def test_no_failed_write_on_any_console():
    for name in ("hv1", "hv2"):
        log = _host(name).run("cat /var/log/libvirt/qemu/%s-serial.log", GUEST).stdout
        assert "WRITE-FAILED" not in log and "NO-DISK" not in log, f"{name}: {log[-2000:]}"
