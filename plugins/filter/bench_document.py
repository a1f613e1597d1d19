# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""One host's benchmark result document, checked."""

from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_bench_model import BenchModelError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_bench_run import document

DOCUMENTATION = r"""
name: bench_document
short_description: One host's benchmark result document, checked
description:
  - Puts a host's facts, the workloads, the cells per path and the paths not measured (with the
    reason) into the result document M(vhostblk.fleet.benchmark_report) reads (C(schema_version) 1),
    and fails naming every problem when it does not fit the schema.
options:
  _input:
    description: >-
      The host facts, C(hostname), C(kernel), C(cpu_model), C(ncpu), C(qemu_version), C(module_version),
      C(emulated) and C(backing) (C(path), C(kind), C(size_bytes)).
    type: dict
    required: true
  workloads:
    description: The workloads.
    type: list
    elements: dict
    required: true
  results:
    description: Per path, the cells by workload name (a path without cells is left out).
    type: dict
    required: true
  skipped:
    description: Per path not measured, the reason.
    type: dict
  notes:
    description: Notes on the whole run.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: The host's document
  ansible.builtin.set_fact:
    doc: "{{ host_facts | vhostblk.fleet.bench_document(loads, results, skipped) }}"
"""

RETURN = r"""
_value:
  description: The document.
  type: dict
"""


def bench_document(host, workloads, results, skipped=None, notes=None):
    try:
        return document(host, workloads, results, skipped, notes)
    except BenchModelError as exc:
        raise AnsibleFilterError(f'bench_document: {exc}') from None


class FilterModule:
    def filters(self):
        return {'bench_document': bench_document}
