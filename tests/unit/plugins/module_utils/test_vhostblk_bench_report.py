# SPDX-License-Identifier: GPL-2.0-or-later
"""Rows of a host's table and the fleet summary across hosts."""


import statistics

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_report as report
from ansible_collections.vhostblk.fleet.tests.unit.plugins.bench_docs import host_doc, without


def _row(rows, path, workload):
    return [row for row in rows if row['path'] == path and row['workload'] == workload][0]


def test_rows_cover_every_workload_and_path_with_values_and_ratios():
    doc = host_doc()
    rows = report.host_rows(doc)
    assert [(row['workload'], row['path']) for row in rows] == \
        [(load['name'], path) for load in doc['workloads'] for path in model.PATHS]
    for row in rows:
        one = model.cell(doc, row['path'], row['workload'])
        assert row['missing'] == []
        assert row['values']['iops'] == one['iops']
        assert row['values']['p99.9'] == one['clat_us']['p99.9']
        native = model.cell(doc, 'host-native', row['workload'])['iops']
        virtio = model.cell(doc, 'virtio-blk', row['workload'])['iops']
        assert row['values']['vs_host_native'] == pytest.approx(one['iops'] / native, abs=1e-3)
        assert row['values']['vs_virtio_blk'] == pytest.approx(one['iops'] / virtio, abs=1e-3)
    assert _row(rows, 'virtio-blk', '4k-randread-qd1-j1')['values']['vs_virtio_blk'] == 1.0
    native = _row(rows, 'host-native', '4k-randread-qd1-j1')['values']
    assert native['cpu.total'] is None and native['cpu.qemu'] is None


def test_missing_inputs_mark_the_values_they_feed():
    doc = without(host_doc(), 'virtio-blk', '4k-randread-qd1-j1')
    doc = without(doc, 'vhost-user', '4k-randwrite-qd4-j2', 'cpu_s.daemon')
    rows = report.host_rows(doc)
    gone = _row(rows, 'virtio-blk', '4k-randread-qd1-j1')
    assert {'iops', 'bw_mib_s', 'p50', 'p99', 'p99.9', 'vs_virtio_blk', 'cpu.qemu', 'cpu.total'} <= set(gone['missing'])
    # the other paths lose only their ratio to the missing baseline
    assert _row(rows, 'vhost-user', '4k-randread-qd1-j1')['missing'] == ['vs_virtio_blk']
    assert _row(rows, 'vhost-user', '4k-randwrite-qd4-j2')['missing'] == ['cpu.daemon', 'cpu.total']
    assert _row(rows, 'vhost-user', '4k-randwrite-qd4-j2')['values']['cpu.qemu'] is not None


def test_a_skipped_path_is_a_row_with_its_reason_and_no_missing_ratio():
    doc = host_doc()
    del doc['results']['virtio-blk']
    doc['skipped'] = {'virtio-blk': 'not wanted'}
    rows = report.host_rows(model.validate(doc))
    assert _row(rows, 'virtio-blk', '4k-randread-qd1-j1')['skipped'] == 'not wanted'
    vhost = _row(rows, 'vhost-user', '4k-randread-qd1-j1')
    assert vhost['values']['vs_virtio_blk'] is None and vhost['missing'] == []


def test_fleet_summary_min_median_max_over_hosts():
    docs = [host_doc('kvm01'), host_doc('kvm02', paths=model.PATHS[1:] + model.PATHS[:1]),
            host_doc('kvm03', emulated=True, paths=model.PATHS[::-1])]
    summary = report.fleet_summary(docs)
    assert summary['emulated'] is True and summary['emulated_hosts'] == ['kvm03']
    assert [host['hostname'] for host in summary['hosts']] == ['kvm01', 'kvm02', 'kvm03']
    assert summary['missing'] == []
    for path in model.PATHS:
        for workload in summary['workloads']:
            ratios = [model.ratio(model.cell(doc, path, workload), model.cell(doc, 'virtio-blk', workload))
                      for doc in docs]
            stats = summary['cells'][path][workload]['vs_virtio_blk']
            assert stats['hosts'] == 3
            assert (stats['min'], stats['max']) == (min(ratios), max(ratios))
            assert stats['median'] == pytest.approx(statistics.median(ratios), abs=1e-3)
            iops = [model.cell(doc, path, workload)['iops'] for doc in docs]
            assert summary['cells'][path][workload]['iops']['median'] == pytest.approx(statistics.median(iops))


def test_fleet_summary_counts_only_hosts_with_a_value():
    docs = [host_doc('kvm01'), without(host_doc('kvm02'), 'vhost-user', '4k-randread-qd1-j1')]
    summary = report.fleet_summary(docs)
    assert summary['cells']['vhost-user']['4k-randread-qd1-j1']['iops']['hosts'] == 1
    assert summary['cells']['vhost-user']['4k-randwrite-qd4-j2']['iops']['hosts'] == 2
    assert summary['missing'] == [{'host': 'kvm02', 'path': 'vhost-user', 'workload': '4k-randread-qd1-j1',
                                   'field': 'cell'}]
    assert summary['cells']['host-native']['4k-randread-qd1-j1']['cpu.total'] is None
