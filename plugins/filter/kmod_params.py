# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Module parameters of vhost_blk as the kernel writes and shows them, for the kmod role."""


DOCUMENTATION = r"""
name: kmod_options
short_description: The C(options) line of C(vhostblk_kmod_params) for modprobe.d
description:
  - "Renders a dict of module parameters as C(name=value) words, sorted by name, with booleans as
    C(Y)/C(N): the form C(/sys/module/*/parameters) shows them in, so what is written can be compared
    with what is loaded (see C(kmod_param_drift))."
options:
  _input:
    description: Module parameters, name to value (bool, int or str).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Persist module parameters
  ansible.builtin.copy:
    content: "options vhost_blk {{ vhostblk_kmod_params | vhostblk.fleet.kmod_options }}\n"
    dest: /etc/modprobe.d/vhost-blk.conf
    mode: "0644"

- name: Parameters the loaded module does not have
  ansible.builtin.debug:
    msg: "{{ vhostblk_kmod_params | vhostblk.fleet.kmod_param_drift(info.module.parameters) }}"
"""

RETURN = r"""
_value:
  description: C(kmod_options) - the words, space separated; C(kmod_param_drift) - the names whose
    loaded value differs from the wanted one, sorted.
  type: raw
"""


def _sysfs(value):
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def kmod_options(params):
    return " ".join(f"{name}={_sysfs(value)}" for name, value in sorted((params or {}).items()))


def kmod_param_drift(params, loaded):
    """Names in ``params`` whose value in ``loaded`` (sysfs strings) is another or missing."""
    loaded = loaded or {}
    return sorted(name for name, value in (params or {}).items() if loaded.get(name) != _sysfs(value))


class FilterModule:
    def filters(self):
        return {"kmod_options": kmod_options, "kmod_param_drift": kmod_param_drift}
