# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Secure Boot state from mokutil --sb-state, for the kmod role's Secure Boot report."""

import re

DOCUMENTATION = r"""
name: secure_boot_state
short_description: Secure Boot state of a host from C(mokutil --sb-state)
description:
  - "Returns C(enabled), C(disabled) or C(unknown) from the registered result of C(mokutil --sb-state)
    (C(SecureBoot enabled) / C(SecureBoot disabled); C(SecureBoot validation is disabled in shim) counts
    as disabled) and whether C(/sys/firmware/efi) exists: without EFI there is no Secure Boot."
  - C(unknown) when mokutil is missing or says something else on an EFI host.
options:
  _input:
    description: The registered result of the mokutil command (rc, stdout, stderr; msg when it did not run).
    type: dict
    required: true
  efi:
    description: Whether /sys/firmware/efi exists on the host.
    type: bool
    required: true
"""

EXAMPLES = r"""
- name: Secure Boot state
  ansible.builtin.set_fact:
    sb: "{{ mokutil_sb | vhostblk.fleet.secure_boot_state(efi_dir.stat.exists) }}"
"""

RETURN = r"""
_value:
  description: enabled, disabled or unknown.
  type: str
"""


def secure_boot_state(result, efi):
    if not efi:
        return "disabled"
    result = result or {}
    text = f"{result.get('stdout', '')}\n{result.get('stderr', '')}"
    if re.search(r"^SecureBoot validation is disabled in shim", text, re.M):
        return "disabled"
    found = re.search(r"^SecureBoot (enabled|disabled)$", text, re.M)
    return found.group(1) if found else "unknown"


class FilterModule:
    def filters(self):
        return {"secure_boot_state": secure_boot_state}
