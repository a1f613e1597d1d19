# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The rollout playbook's summary: hosts grouped by what happened to them."""

DOCUMENTATION = r"""
name: rollout_summary
short_description: Hosts of a vhost-blk rollout grouped by their result
description:
  - For C(playbooks/rollout.yml). Groups the hosts by their C(__vhostblk_rollout_status) - for
    example C(done), C(reload pending), C(busy (module only)), C(failed), C(not attempted) - in
    inventory order. A host the pre-check never reached is C(unreachable); one still C(pending)
    was never attempted (an earlier batch failed).
options:
  _input:
    description: The hosts of the rollout.
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Collect the result of every host
  ansible.builtin.set_fact:
    vhostblk_rollout_summary: "{{ targets | vhostblk.fleet.rollout_summary(hostvars) }}"
"""

RETURN = r"""
_value:
  description: Status -> list of hosts.
  type: dict
"""


def rollout_summary(hosts, hostvars):
    summary = {}
    for host in hosts:
        status = hostvars[host].get("__vhostblk_rollout_status", "unreachable") if host in hostvars else "unreachable"
        summary.setdefault("not attempted" if status == "pending" else str(status), []).append(host)
    return summary


class FilterModule:
    def filters(self):
        return {"rollout_summary": rollout_summary}
