# SPDX-License-Identifier: GPL-2.0-or-later
"""The benchmark role's filters: bench_workloads, bench_path_cells, bench_document."""


import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.filter.bench_document import FilterModule as DocumentFilters
from ansible_collections.vhostblk.fleet.plugins.filter.bench_path_cells import FilterModule as CellsFilters
from ansible_collections.vhostblk.fleet.plugins.filter.bench_workloads import FilterModule as WorkloadFilters
from ansible_collections.vhostblk.fleet.tests.unit.plugins.bench_docs import host_doc
from ansible_collections.vhostblk.fleet.tests.unit.plugins.module_utils.test_vhostblk_bench_run import (
    LOADS,
    console_of,
    samples_of,
)

bench_workloads = WorkloadFilters().filters()['bench_workloads']
bench_path_cells = CellsFilters().filters()['bench_path_cells']
bench_document = DocumentFilters().filters()['bench_document']


def test_workloads_filter_names_the_variable():
    assert bench_workloads([{'rw': 'read', 'bs': '128k', 'iodepth': 8}])[0]['name'] == '128k-read-qd8-j1'
    with pytest.raises(AnsibleFilterError, match=r'bench_workloads: vhostblk_benchmark_workloads\[0\]\.rw'):
        bench_workloads([{'rw': 'bogus', 'bs': '4k'}], 'vhostblk_benchmark_workloads')


def test_path_cells_filter_and_document_filter_fit_together():
    cells = bench_path_cells(console_of('vhost-user'), 'vhost-user', LOADS, samples_of())
    assert cells['problems'] == []
    doc = bench_document(host_doc()['host'], LOADS, {'vhost-user': cells['cells']},
                         {'vhost-blk-pci': 'the patched QEMU is not installed'})
    assert sorted(doc['results']) == ['vhost-user']
    with pytest.raises(AnsibleFilterError, match='bench_path_cells: unknown path'):
        bench_path_cells('', 'nvme', LOADS)
    with pytest.raises(AnsibleFilterError, match='bench_document: '):
        bench_document({}, LOADS, {})
