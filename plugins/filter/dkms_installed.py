# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Filters over ``dkms status`` output, for the kmod role: ``dkms_installed`` (kernels with the
module installed) and ``dkms_versions`` (the versions of a module DKMS knows, in any state)."""


DOCUMENTATION = r"""
name: dkms_installed
short_description: Kernel releases for which DKMS reports a module as installed
description:
  - "Parses the lines of C(dkms status) (dkms 2.8 and 3.x formats, for example
    C(vhost-blk/0.1.0, 6.12.38+deb13-amd64, x86_64: installed)) and returns the kernel releases
    whose state is C(installed), in the order they appear."
  - Kernel releases are compared as plain strings, so C(+deb13) or C(~bpo) releases match exactly.
options:
  _input:
    description: The lines of C(dkms status), as in C(stdout_lines).
    type: list
    elements: str
    required: true
  module:
    description: Only lines of this module (C(name) or C(name/version)); default every line.
    type: str
"""

EXAMPLES = r"""
- name: Older versions to remove (dkms_versions lists every version of a module DKMS has)
  ansible.builtin.debug:
    msg: "{{ status.stdout_lines | vhostblk.fleet.dkms_versions('vhost-blk') | reject('equalto', '0.2.0') }}"

- name: Kernels that still need the module
  ansible.builtin.set_fact:
    missing: "{{ kernels | difference(status.stdout_lines | vhostblk.fleet.dkms_installed('vhost-blk/0.1.0')) }}"
"""

RETURN = r"""
_value:
  description: Kernel releases with the module installed.
  type: list
  elements: str
"""


def dkms_installed(lines, module=None):
    found = []
    for line in lines or []:
        head, _sep, state = line.partition(":")
        fields = [f.strip() for f in head.split(",")]
        if not state.strip().startswith("installed"):
            continue
        if len(fields) == 4:  # dkms 2.x: "name, version, kernel, arch"
            fields = [fields[0] + "/" + fields[1]] + fields[2:]
        if len(fields) != 3:
            continue
        name, kernel = fields[0], fields[1]
        if module and module not in (name, name.split("/")[0]):
            continue
        if kernel not in found:
            found.append(kernel)
    return found


def dkms_versions(lines, name):
    """Versions of module ``name`` in ``dkms status`` lines (added, built or installed), in order."""
    found = []
    for line in lines or []:
        head = line.partition(":")[0]
        fields = [f.strip() for f in head.split(",")]
        module, _sep, version = fields[0].partition("/")
        if not version and len(fields) >= 2:      # dkms 2.x: "name, version[, kernel, arch]"
            version = fields[1]
        if module == name and version and version not in found:
            found.append(version)
    return found


class FilterModule:
    def filters(self):
        return {"dkms_installed": dkms_installed, "dkms_versions": dkms_versions}
