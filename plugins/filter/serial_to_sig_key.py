# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""A certificate's serial number in the form modinfo prints a module's sig_key."""

import re

DOCUMENTATION = r"""
name: serial_to_sig_key
short_description: C(openssl x509 -serial) output as modinfo's C(sig_key)
description:
  - "C(serial=5E5024CF) becomes C(5E:50:24:CF): the kernel's sign-file names the signer of a module
    by issuer and serial number, and modinfo prints that serial as C(sig_key)."
  - An empty string when the input holds no serial.
options:
  _input:
    description: The output of C(openssl x509 -noout -serial).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The sig_key of modules signed with our certificate
  ansible.builtin.set_fact:
    want: "{{ openssl_serial.stdout | vhostblk.fleet.serial_to_sig_key }}"
"""

RETURN = r"""
_value:
  description: Upper-case hex bytes separated by colons.
  type: str
"""


def serial_to_sig_key(text):
    found = re.search(r"serial=([0-9A-Fa-f]+)", text or "")
    if not found:
        return ""
    digits = found.group(1).upper()
    digits = digits.rjust(len(digits) + len(digits) % 2, "0")
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


class FilterModule:
    def filters(self):
        return {"serial_to_sig_key": serial_to_sig_key}
