# SPDX-License-Identifier: GPL-2.0-or-later
"""Check mode on a fresh host (issue 13 item 5): after playbooks/remove.yml the host is as before
vhost-blk (prepare.yml recorded its package list and configuration); playbooks/site.yml with the
scenario's variables in --check then succeeds, reports what it would install, and leaves the
package list, the configuration and the files the roles write as they were."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from check_mode import run_check_mode  # noqa: E402

SITE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / "site.yml"
WRITTEN = ["/etc/udev/rules.d/65-vhost-blk.rules", "/etc/modules-load.d/vhost-blk.conf",
           "/etc/modprobe.d/vhost-blk.conf", "/etc/vhost-blk", "/usr/local/lib/vhostblk-fleet",
           "/etc/apt/sources.list.d/vhostblk-fleet.list", "/usr/share/keyrings/vhostblk-fleet.gpg"]
PACKAGES = "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' | awk '$1 == \"ii\" {print $2}' | sort"
CONFIG = "cat /etc/libvirt/qemu.conf /etc/apparmor.d/local/abstractions/libvirt-qemu 2>/dev/null | sha256sum"


def test_check_mode_on_a_fresh_host_reports_and_changes_nothing(host):
    before = host.file("/var/tmp/before-packages").content_string.split()
    assert before, "prepare.yml recorded no package list"
    assert host.check_output(PACKAGES).split() == before, "the host is not as before: nothing to check against"
    run = run_check_mode(SITE)
    assert run.rc == 0, f"ansible-playbook --check failed (rc {run.rc}):\n{run.output[-8000:]}"
    counters = run.recap[host.backend.get_hostname()]
    assert counters["failed"] == 0 and counters["unreachable"] == 0, counters
    assert counters["changed"] > 0, f"check mode reports nothing it would do on a fresh host: {counters}"
    for would in ["would install vhost-blk-modules-", "would install vhost-blk-tools", "would load vhost_blk"]:
        assert would in run.output, f"check mode does not say it {would}"
    assert host.check_output(PACKAGES).split() == before, "check mode installed or removed packages"
    assert host.check_output(CONFIG).strip() == host.file("/var/tmp/before-config").content_string.strip()
    left = [path for path in WRITTEN if host.file(path).exists]
    assert not left, f"check mode wrote {left}"
    assert not host.file("/sys/module/vhost_blk").exists, "check mode loaded the module"
