# SPDX-License-Identifier: GPL-2.0-or-later
"""What packaging/ defines once and the roles and plugins carry a copy of must not drift.

packaging/aptpin.py writes the QEMU pin into the repository; the qemu role ships the same file
(its hosts may reach the repository over http, where the role cannot copy it from). The info
module tells our builds by the same version mark. The role installs only packages
build_qemu.py keeps.
"""

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))

import aptpin  # noqa: E402
import build_qemu  # noqa: E402

ROLE = REPO / "roles" / "qemu"
UPDATES = REPO / "plugins" / "module_utils" / "vhostblk_qemu_updates.py"


def test_the_role_ships_the_pin_aptpin_writes():
    shipped = (ROLE / "files" / aptpin.PIN_FILE_NAME).read_text()
    assert shipped == aptpin.pin_text(), (
        f"roles/qemu/files/{aptpin.PIN_FILE_NAME} differs from aptpin.pin_text(): regenerate it with\n"
        f"  (cd packaging && python3 -c 'import aptpin, sys; sys.stdout.write(aptpin.pin_text())') "
        f"> roles/qemu/files/{aptpin.PIN_FILE_NAME}")


def test_info_knows_our_builds_by_the_same_mark():
    line = f"LOCAL_VERSION_MARK = '{aptpin.LOCAL_VERSION_MARK}'\n"
    assert line in UPDATES.read_text(), f"{UPDATES.relative_to(REPO)} must say {line.strip()}"


def test_the_role_installs_only_packages_the_build_keeps():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["vhostblk_qemu_packages"]
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    documented = spec["argument_specs"]["main"]["options"]["vhostblk_qemu_packages"]["default"]
    assert defaults == documented, "defaults/main.yml and meta/argument_specs.yml disagree"
    assert set(defaults) <= build_qemu.X86_KEEP, f"not built by build_qemu.py: {set(defaults) - build_qemu.X86_KEEP}"
