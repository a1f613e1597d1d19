# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Whether a certificate is an enrolled Machine Owner Key, from mokutil --test-key."""

import re

DOCUMENTATION = r"""
name: mok_enrolled
short_description: Whether C(mokutil --test-key CERT) found the certificate enrolled
description:
  - "Returns true (C(CERT is already enrolled)), false (C(is not enrolled), or only requested with
    C(is already in the enrollment request), enrolled at the next boot once confirmed) or none
    (mokutil missing or another answer)."
options:
  _input:
    description: The registered result of the mokutil command (stdout, stderr).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Is our key enrolled
  ansible.builtin.set_fact:
    enrolled: "{{ mokutil_test | vhostblk.fleet.mok_enrolled }}"
"""

RETURN = r"""
_value:
  description: true, false or none.
  type: bool
"""


def mok_enrolled(result):
    result = result or {}
    text = f"{result.get('stdout', '')}\n{result.get('stderr', '')}"
    if re.search(r" is already enrolled$", text, re.M):
        return True
    if re.search(r" is not enrolled$| is already in the enrollment request$", text, re.M):
        return False
    return None


class FilterModule:
    def filters(self):
        return {"mok_enrolled": mok_enrolled}
