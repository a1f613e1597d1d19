# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""One cell of a benchmark result document, from fio's JSON output."""

from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_bench_model import (
    BenchModelError,
    cell_from_fio,
)

DOCUMENTATION = r"""
name: bench_cell
short_description: A benchmark result cell from fio's JSON output
description:
  - Builds the result of one path and workload for a benchmark result document (read by
    M(vhostblk.fleet.benchmark_report)) from the output of C(fio --output-format=json) (or C(json+)),
    that is IOPS, bandwidth in MiB/s, completed I/Os, completion latency p50/p99/p99.9 in µs, and the host
    CPU seconds per component measured over the same run.
  - Several job entries (C(numjobs) without C(group_reporting)) add up; their percentiles need C(json+).
    Pieces fio did not report are null and explained in C(notes); output that is not fio JSON fails.
options:
  _input:
    description: fio's standard output.
    type: str
    required: true
  cpu_s:
    description: Host CPU seconds over the run by component, C(qemu), C(daemon) and C(kernel_workers).
    type: dict
"""

EXAMPLES = r"""
- name: Keep the cell of the vhost-user path
  ansible.builtin.set_fact:
    cell: "{{ fio_run.stdout | vhostblk.fleet.bench_cell({'qemu': 1.52, 'daemon': 0.31, 'kernel_workers': 0.88}) }}"
"""

RETURN = r"""
_value:
  description: >-
    The cell: C(iops), C(bw_mib_s), C(ios), C(clat_us) (C(p50), C(p99), C(p99.9)), C(cpu_s), C(fio) (what
    fio ran: C(rw), C(bs), C(iodepth), C(numjobs), C(version)) and C(notes).
  type: dict
"""


def bench_cell(text, cpu_s=None):
    try:
        return cell_from_fio(text, cpu_s)
    except BenchModelError as exc:
        raise AnsibleFilterError(f'bench_cell: {exc}') from None


class FilterModule:
    def filters(self):
        return {'bench_cell': bench_cell}
