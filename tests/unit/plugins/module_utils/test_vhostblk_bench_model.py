# SPDX-License-Identifier: GPL-2.0-or-later
"""The benchmark result model: cells from real fio output, validation, ratios, CPU per I/O, missing cells."""


import copy
import json

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.tests.unit.plugins.bench_docs import fio_text, host_doc, without


def test_cell_of_a_single_job():
    text = fio_text('randread-qd1-j1.json')
    read = json.loads(text)['jobs'][0]['read']
    cell = model.cell_from_fio(text, {'qemu': 0.5})
    assert cell['iops'] == pytest.approx(read['iops'], abs=1e-3)
    assert cell['ios'] == read['total_ios']
    assert cell['bw_mib_s'] == pytest.approx(read['bw_bytes'] / 1048576, abs=1e-3)
    pct = read['clat_ns']['percentile']
    assert cell['clat_us'] == pytest.approx({'p50': pct['50.000000'] / 1000, 'p99': pct['99.000000'] / 1000,
                                             'p99.9': pct['99.900000'] / 1000})
    assert cell['cpu_s'] == {'qemu': 0.5}
    assert cell['fio'] == {'rw': 'randread', 'bs': '4k', 'iodepth': 1, 'numjobs': 1, 'version': 'fio-3.33'}
    assert cell['notes'] == []


def test_cell_of_two_jobs_with_group_reporting():
    text = fio_text('randwrite-qd8-j2-group.json')
    job = json.loads(text)['jobs'][0]
    cell = model.cell_from_fio(text)
    assert cell['iops'] == pytest.approx(job['write']['iops'], abs=1e-3)
    assert cell['ios'] == job['write']['total_ios']
    assert cell['clat_us']['p99.9'] == pytest.approx(job['write']['clat_ns']['percentile']['99.900000'] / 1000)
    assert (cell['fio']['numjobs'], cell['fio']['iodepth']) == (2, 8)


def test_cell_of_jobs_reported_separately_adds_up_and_has_no_percentiles():
    text = fio_text('read-qd4-j2-pertask.json')
    jobs = json.loads(text)['jobs']
    cell = model.cell_from_fio(text)
    assert cell['iops'] == pytest.approx(sum(job['read']['iops'] for job in jobs), abs=1e-3)
    assert cell['ios'] == sum(job['read']['total_ios'] for job in jobs)
    assert cell['bw_mib_s'] == pytest.approx(sum(job['read']['bw_bytes'] for job in jobs) / 1048576, abs=1e-3)
    assert cell['clat_us'] == {'p50': None, 'p99': None, 'p99.9': None}
    assert any('--group_reporting' in note for note in cell['notes'])


def test_cell_of_jobs_reported_separately_with_histograms_has_percentiles():
    cell = model.cell_from_fio(fio_text('randread-qd4-j2-jsonplus.json'))
    assert None not in cell['clat_us'].values()
    assert cell['clat_us']['p50'] <= cell['clat_us']['p99'] <= cell['clat_us']['p99.9']
    assert cell['notes'] == []


def test_cell_without_percentiles_says_which_are_missing():
    cell = model.cell_from_fio(fio_text('randwrite-qd1-j1-nopct.json'))
    assert cell['iops'] > 0
    assert cell['clat_us'] == {'p50': None, 'p99': None, 'p99.9': None}
    assert len(cell['notes']) == 3 and '99.9th' in cell['notes'][2]
    assert model.cell_missing_fields(cell, 'host-native') == ['clat_us.p50', 'clat_us.p99', 'clat_us.p99.9']


def test_cell_of_a_failed_job_keeps_fios_error():
    doc = json.loads(fio_text('randread-qd1-j1.json'))
    doc['jobs'][0]['error'] = 5
    assert 'error(s) [5]' in model.cell_from_fio(json.dumps(doc))['notes'][0]


@pytest.mark.parametrize('text', ['', 'Segmentation fault', '{"jobs": [', '[1, 2]', '{"jobs": [{"jobname": "x"}]}'])
def test_garbage_is_a_model_error(text):
    with pytest.raises(model.BenchModelError) as info:
        model.cell_from_fio(text)
    assert info.value.problems and all(problem for problem in info.value.problems)


def test_unknown_cpu_component_is_refused():
    with pytest.raises(model.BenchModelError, match="unknown key 'vcpu'"):
        model.cell_from_fio(fio_text('randread-qd1-j1.json'), {'vcpu': 1.0})


def test_complete_document_validates_and_misses_nothing():
    doc = host_doc()
    assert model.validate(copy.deepcopy(doc)) == doc
    assert model.missing_cells(doc) == []


@pytest.mark.parametrize('change, words', [
    (lambda d: d.pop('schema_version'), 'no schema_version'),
    (lambda d: d.update(schema_version=2), 'schema_version 2 is not supported'),
    (lambda d: d['host'].update(ncpu='many'), "host.ncpu: expected an integer > 0, got 'many'"),
    (lambda d: d['host'].pop('emulated'), "host: 'emulated' is required"),
    (lambda d: d['host']['backing'].update(kind='nfs'), 'host.backing.kind: expected file or block'),
    (lambda d: d['results']['virtio-blk']['4k-randread-qd1-j1'].update(iops='fast'),
     "results.virtio-blk.4k-randread-qd1-j1.iops: expected a number >= 0, got 'fast'"),
    (lambda d: d['results'].update({'virtio-scsi': {}}), "results: unknown key 'virtio-scsi'"),
    (lambda d: d['results']['vhost-user'].update({'8k-read': {}}), "results.vhost-user: unknown key '8k-read'"),
    (lambda d: d['results']['vhost-user']['4k-randread-qd1-j1']['fio'].update(iodepth=32),
     'fio ran iodepth=32, the workload says 1'),
    (lambda d: d['results']['vhost-user']['4k-randread-qd1-j1']['fio'].update(bs='8k'),
     "fio ran bs='8k', the workload says '4k'"),
    (lambda d: d.update(skipped={'vhost-user': 'no daemon'}), 'results.vhost-user: the path is also listed as skipped'),
    (lambda d: d['workloads'].append(dict(d['workloads'][0])), "'4k-randread-qd1-j1' is declared twice"),
    (lambda d: d['workloads'][0].update(rw='random'), 'workloads[0].rw: expected one of read'),
])
def test_bad_documents_are_refused_with_where_and_why(change, words):
    doc = host_doc()
    change(doc)
    with pytest.raises(model.BenchModelError) as info:
        model.validate(doc)
    assert any(words in problem for problem in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once():
    doc = host_doc()
    doc['host']['ncpu'] = 0
    doc['results']['virtio-blk']['4k-randread-qd1-j1']['ios'] = -1
    with pytest.raises(model.BenchModelError) as info:
        model.validate(doc)
    assert len(info.value.problems) == 2


def test_block_sizes():
    assert [model.size_bytes(bs) for bs in ('4k', '4K', '128k', '1m', '4096', 4096, '4ki', '4kb', '8k,4k')] == \
        [4096, 4096, 131072, 1048576, 4096, 4096, 4096, 4096, 8192]
    assert model.size_bytes('big') is None and model.size_bytes('') is None


def test_ratio_is_iops_over_the_baselines_iops():
    doc = host_doc()
    mine = model.cell(doc, 'vhost-user', '4k-randread-qd1-j1')
    peer = model.cell(doc, 'virtio-blk', '4k-randread-qd1-j1')
    assert model.ratio(mine, peer) == pytest.approx(mine['iops'] / peer['iops'], abs=1e-3)
    assert model.ratio(mine, None) is None
    assert model.ratio(mine, dict(peer, iops=0)) is None
    assert model.ratio(dict(mine, iops=None), peer) is None


def test_cpu_per_io_per_component_and_total():
    doc = host_doc()
    one = model.cell(doc, 'vhost-user', '4k-randwrite-qd4-j2')
    cpu = model.cpu_us_per_io(one, 'vhost-user')
    assert set(cpu) == {'qemu', 'daemon', 'kernel_workers', 'total'}
    for name in ('qemu', 'daemon', 'kernel_workers'):
        assert cpu[name] == pytest.approx(one['cpu_s'][name] * 1e6 / one['ios'], abs=1e-3)
    assert cpu['total'] == pytest.approx(cpu['qemu'] + cpu['daemon'] + cpu['kernel_workers'], abs=1e-2)
    assert model.cpu_us_per_io(model.cell(doc, 'host-native', '4k-randwrite-qd4-j2'), 'host-native') == \
        {'total': None}
    assert model.cpu_us_per_io(dict(one, ios=0), 'vhost-user')['qemu'] is None


def test_missing_cells_name_host_path_workload_and_field():
    doc = without(host_doc('kvm07'), 'vhost-user', '4k-randread-qd1-j1')
    doc = without(doc, 'virtio-blk', '4k-randwrite-qd4-j2', 'clat_us.p99.9')
    doc = without(doc, 'vhost-blk-pci', '4k-randwrite-qd4-j2', 'cpu_s.kernel_workers')
    doc['host']['qemu_version'] = None
    assert model.missing_cells(model.validate(doc)) == [
        {'host': 'kvm07', 'path': None, 'workload': None, 'field': 'host.qemu_version'},
        {'host': 'kvm07', 'path': 'vhost-user', 'workload': '4k-randread-qd1-j1', 'field': 'cell'},
        {'host': 'kvm07', 'path': 'virtio-blk', 'workload': '4k-randwrite-qd4-j2', 'field': 'clat_us.p99.9'},
        {'host': 'kvm07', 'path': 'vhost-blk-pci', 'workload': '4k-randwrite-qd4-j2', 'field': 'cpu_s.kernel_workers'},
    ]


def test_a_skipped_path_is_not_missing():
    doc = host_doc()
    del doc['results']['vhost-blk-pci']
    assert len(model.missing_cells(doc)) == 2
    doc['skipped'] = {'vhost-blk-pci': 'the patched QEMU is not installed'}
    assert model.missing_cells(model.validate(doc)) == []
