# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The benchmark's fio matrix from a role variable, checked and named."""

from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_bench_model import BenchModelError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_bench_run import workloads

DOCUMENTATION = r"""
name: bench_workloads
short_description: The benchmark's fio matrix, checked and named
description:
  - Checks a list of fio workloads (C(rw), C(bs), C(iodepth), C(numjobs)) as the role
    C(vhostblk.fleet.benchmark) takes them and gives each its C(name) (C(4k-randread-qd1-j1)) unless it
    has one. Fails naming the variable and the entry for every problem (unknown C(rw), unreadable
    C(bs), C(iodepth) outside 1-1024, C(numjobs) outside 1-64, a name used twice).
options:
  _input:
    description: The workloads.
    type: list
    elements: dict
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    default: workloads
"""

EXAMPLES = r"""
- name: Name the matrix
  ansible.builtin.set_fact:
    loads: "{{ vhostblk_benchmark_workloads | vhostblk.fleet.bench_workloads('vhostblk_benchmark_workloads') }}"
"""

RETURN = r"""
_value:
  description: The workloads, each with C(name), C(rw), C(bs), C(iodepth) and C(numjobs).
  type: list
  elements: dict
"""


def bench_workloads(spec, variable='workloads'):
    try:
        return workloads(spec, variable)
    except BenchModelError as exc:
        raise AnsibleFilterError(f'bench_workloads: {exc}') from None


class FilterModule:
    def filters(self):
        return {'bench_workloads': bench_workloads}
