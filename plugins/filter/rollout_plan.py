# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The rollout playbook's plan: the order of the hosts and the batch settings, checked once."""

import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: rollout_plan
short_description: Order and batch settings of a vhost-blk rollout, from every host's variables
description:
  - For C(playbooks/rollout.yml). Reads C(vhostblk_rollout_serial) and
    C(vhostblk_rollout_max_fail_percentage) from the hosts' own variables (inventory C(group_vars)
    and C(host_vars) included, which play keywords cannot see), checks that every host has the same
    value and that it is valid, and orders the hosts so that the canary batch never holds a busy
    host - idle hosts first, in inventory order, then the hosts the pre-check found busy.
options:
  _input:
    description: The hosts of the rollout, in inventory order.
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars). A host is busy when its C(__vhostblk_rollout_busy_left) is true.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Publish the plan on localhost
  ansible.builtin.set_fact:
    plan: "{{ ansible_play_hosts_all | vhostblk.fleet.rollout_plan(hostvars) }}"
  run_once: true
  delegate_to: localhost
  delegate_facts: true
"""

RETURN = r"""
_value:
  description: C(order) (host names), C(serial) (list for the C(serial) keyword),
    C(max_fail_percentage) (int) and C(busy) (the busy hosts).
  type: dict
"""

DEFAULT_SERIAL = ["1", "50%", "100%"]
_BATCH = re.compile(r"^([1-9][0-9]*)%?$")


def _batch(value):
    text = str(value).strip()
    m = _BATCH.match(text)
    if not m or isinstance(value, bool) or (text.endswith("%") and int(m.group(1)) > 100):
        raise AnsibleFilterError(f"vhostblk_rollout_serial: {value!r} is not a batch size "
                                 "(a positive number of hosts, or a percentage from 1% to 100%)")
    return text


def _same_everywhere(hosts, hostvars, name, default):
    values = {}
    for host in hosts:
        values.setdefault(repr(hostvars[host].get(name, default)), []).append(host)
    if len(values) > 1:
        seen = "; ".join(f"{', '.join(h)}: {v}" for v, h in values.items())
        raise AnsibleFilterError(f"{name} differs between the hosts of the rollout ({seen}): "
                                 "set it once, for the group")
    return hostvars[hosts[0]].get(name, default)


def rollout_plan(hosts, hostvars):
    hosts = list(hosts)
    if not hosts:
        raise AnsibleFilterError("rollout_plan: no hosts")
    serial = _same_everywhere(hosts, hostvars, "vhostblk_rollout_serial", DEFAULT_SERIAL)
    serial = [_batch(b) for b in (serial if isinstance(serial, (list, tuple)) else [serial])]
    if not serial:
        raise AnsibleFilterError("vhostblk_rollout_serial: an empty list (give at least one batch size)")
    max_fail = _same_everywhere(hosts, hostvars, "vhostblk_rollout_max_fail_percentage", 0)
    if isinstance(max_fail, bool) or not re.match(r"^[0-9]{1,3}$", str(max_fail).strip()) \
            or int(str(max_fail).strip()) > 100:
        raise AnsibleFilterError(f"vhostblk_rollout_max_fail_percentage: {max_fail!r} is not a whole number "
                                 "from 0 to 100")
    busy = [h for h in hosts if _truthy(hostvars[h].get("__vhostblk_rollout_busy_left", False))]
    idle = [h for h in hosts if h not in busy]
    return {"order": idle + busy, "serial": serial, "max_fail_percentage": int(str(max_fail).strip()),
            "busy": busy}


def _truthy(value):
    return value is True or str(value).strip().lower() in ("true", "yes", "1")


class FilterModule:
    def filters(self):
        return {"rollout_plan": rollout_plan}
