# SPDX-License-Identifier: GPL-2.0-or-later
"""The kmod role's Secure Boot report: mokutil --sb-state / --test-key output and sig_key from a serial."""

import pytest
from ansible_collections.vhostblk.fleet.plugins.filter.mok_enrolled import mok_enrolled
from ansible_collections.vhostblk.fleet.plugins.filter.secure_boot_state import secure_boot_state
from ansible_collections.vhostblk.fleet.plugins.filter.serial_to_sig_key import serial_to_sig_key

CERT = "/usr/share/vhost-blk/vhost-blk-modules.der"


@pytest.mark.parametrize("result,efi,state", [
    ({"rc": 0, "stdout": "SecureBoot enabled", "stderr": ""}, True, "enabled"),
    ({"rc": 0, "stdout": "SecureBoot disabled", "stderr": ""}, True, "disabled"),
    ({"rc": 0, "stdout": "SecureBoot enabled\nSecureBoot validation is disabled in shim", "stderr": ""}, True,
     "disabled"),
    # mokutil on a BIOS host, and on an EFI host whose variables it cannot read
    ({"rc": 255, "stdout": "", "stderr": "EFI variables are not supported on this system"}, False, "disabled"),
    ({"rc": 255, "stdout": "", "stderr": "EFI variables are not supported on this system"}, True, "unknown"),
    # mokutil not installed: the command module's own failure
    ({"rc": 2, "msg": "[Errno 2] No such file or directory: b'mokutil'"}, True, "unknown"),
    ({"rc": 2, "msg": "[Errno 2] No such file or directory: b'mokutil'"}, False, "disabled"),
    (None, True, "unknown"),
])
def test_secure_boot_state(result, efi, state):
    assert secure_boot_state(result, efi) == state


@pytest.mark.parametrize("stdout,enrolled", [
    (f"{CERT} is already enrolled", True),
    (f"{CERT} is not enrolled", False),
    (f"{CERT} is already in the enrollment request", False),
    ("", None),
])
def test_mok_enrolled(stdout, enrolled):
    assert mok_enrolled({"rc": 0, "stdout": stdout, "stderr": ""}) is enrolled


def test_mok_enrolled_without_mokutil():
    assert mok_enrolled({"rc": 2, "msg": "No such file or directory"}) is None


@pytest.mark.parametrize("text,sig_key", [
    ("serial=5E5024CFC84C6E0EFD8C8D2F93EEF3D54C20A34B", "5E:50:24:CF:C8:4C:6E:0E:FD:8C:8D:2F:93:EE:F3:D5:4C:20:A3:4B"),
    ("serial=abc\n", "0A:BC"),
    ("", ""),
    ("no serial here", ""),
])
def test_serial_to_sig_key(text, sig_key):
    assert serial_to_sig_key(text) == sig_key
