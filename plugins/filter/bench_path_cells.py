# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The benchmark cells of one path, from its throwaway guest's console and the host CPU samples."""

from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_bench_model import BenchModelError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_bench_run import path_cells

DOCUMENTATION = r"""
name: bench_path_cells
short_description: Benchmark cells of one path from a guest's console and host CPU samples
description:
  - Reads the console of a C(vhostblk.fleet.benchmark) guest (C(BENCH-RUN-END NAME rc=N) and fio's JSON
    output between C(BENCH-FIO-BEGIN NAME) and C(BENCH-FIO-END NAME) per workload) and the role's CPU
    samples (C(HZ N), then C(BEGIN|END NAME QEMU DAEMON WORKERS) in clock ticks), and makes the cell of
    every workload as the filter P(vhostblk.fleet.bench_cell#filter) does, with the CPU seconds of the
    components the path reports.
  - A run that failed or printed no fio output has no cell; the result's C(problems) says why.
options:
  _input:
    description: The guest's console.
    type: str
    required: true
  path:
    description: The path, C(virtio-blk), C(vhost-user), C(vhost-blk-pci) or C(host-native).
    type: str
    required: true
  workloads:
    description: The workloads (from P(vhostblk.fleet.bench_workloads#filter)).
    type: list
    elements: dict
    required: true
  samples:
    description: The CPU samples; omitted, no CPU time is expected.
    type: str
"""

EXAMPLES = r"""
- name: Cells of the vhost-user path
  ansible.builtin.set_fact:
    cells: "{{ console | vhostblk.fleet.bench_path_cells('vhost-user', loads, samples) }}"
"""

RETURN = r"""
_value:
  description: C(cells) (workload name to cell) and C(problems) (one sentence each).
  type: dict
"""


def bench_path_cells(console, path, workloads, samples=None):
    try:
        return path_cells(path, workloads, console, samples)
    except BenchModelError as exc:
        raise AnsibleFilterError(f'bench_path_cells: {exc}') from None


class FilterModule:
    def filters(self):
        return {'bench_path_cells': bench_path_cells}
