# SPDX-License-Identifier: GPL-2.0-or-later
"""The benchmark role's on-host side: matrix, guest console, CPU samples, document (fixtures: ../bench_docs.py)."""


import os

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_run as run
from ansible_collections.vhostblk.fleet.tests.unit.plugins.bench_docs import WORKLOADS, fio_text, host_doc

LOADS = [dict(load) for load in WORKLOADS]


def console_of(path, loads=LOADS, rc=0, drop=None):
    """What a guest prints: markers, kernel noise, fio's JSON after the END marker; CRLF as a serial port."""
    lines = ['[    0.000000] Linux version 6.1.0-26-amd64', 'BENCH-DISK /dev/vda 524288 sectors, 2 queue(s)']
    for load in loads:
        lines += [f'BENCH-RUN-BEGIN {load["name"]}', f'BENCH-RUN-END {load["name"]} rc={rc}']
        if load['name'] != drop:
            text = fio_text(os.path.join('host', f'{path}-{load["name"]}.json'))
            lines += [f'BENCH-FIO-BEGIN {load["name"]}', text.rstrip('\n'), '', f'BENCH-FIO-END {load["name"]}']
    lines.append('VHOSTBLK-L2-DONE rc=0')
    return '\r\n'.join(lines) + '\r\n'


def samples_of(loads=LOADS, daemon=True):
    lines = ['HZ 100']
    for index, load in enumerate(loads):
        lines.append(f'BEGIN {load["name"]} {1000 * index} {500 if daemon else -1} {200 * index}')
        lines.append(f'END {load["name"]} {1000 * index + 150} {502 if daemon else -1} {200 * index + 40}')
    return '\n'.join(lines) + '\n'


def test_default_names_and_defaults_of_the_matrix():
    loads = run.workloads([{'rw': 'randread', 'bs': '4k'}, {'rw': 'write', 'bs': 131072, 'iodepth': 8},
                           {'rw': 'randwrite', 'bs': '4k', 'iodepth': 32, 'numjobs': 4, 'name': 'mine'}])
    assert [load['name'] for load in loads] == ['4k-randread-qd1-j1', '131072-write-qd8-j1', 'mine']
    assert loads[0] == {'name': '4k-randread-qd1-j1', 'rw': 'randread', 'bs': '4k', 'iodepth': 1, 'numjobs': 1}


def test_a_bad_matrix_names_the_variable_and_every_entry():
    with pytest.raises(model.BenchModelError) as err:
        run.workloads([{'rw': 'randred', 'bs': '4k'}, {'rw': 'read', 'bs': '4q', 'iodepth': 0},
                       {'rw': 'read', 'bs': '4k', 'numjobs': 65}, 'read', {'rw': 'read', 'bs': '4k', 'name': 'a b'},
                       {'rw': 'randread', 'bs': '4k'}, {'rw': 'randread', 'bs': '4k'}], 'vhostblk_benchmark_workloads')
    text = str(err.value)
    for expected in ("vhostblk_benchmark_workloads[0].rw: expected one of", "vhostblk_benchmark_workloads[1].bs",
                     "vhostblk_benchmark_workloads[1].iodepth: expected 1 to 1024",
                     "vhostblk_benchmark_workloads[2].numjobs: expected 1 to 64",
                     "vhostblk_benchmark_workloads[3]: expected a dictionary",
                     "vhostblk_benchmark_workloads[4].name: letters",
                     "vhostblk_benchmark_workloads[6].name: '4k-randread-qd1-j1' is declared twice"):
        assert expected in text
    with pytest.raises(model.BenchModelError, match='non-empty list'):
        run.workloads([], 'vhostblk_benchmark_workloads')


def test_cells_of_a_vhost_user_guest_carry_its_cpu_per_component():
    result = run.path_cells('vhost-user', LOADS, console_of('vhost-user'), samples_of())
    assert result['problems'] == []
    first, second = (result['cells'][load['name']] for load in LOADS)
    assert first['cpu_s'] == {'qemu': 1.5, 'daemon': 0.02, 'kernel_workers': 0.4}
    assert second['cpu_s'] == {'qemu': 1.5, 'daemon': 0.02, 'kernel_workers': 0.4}
    assert first['fio']['rw'] == 'randread' and second['fio']['numjobs'] == 2
    assert model.cell_missing_fields(first, 'vhost-user') == []


def test_a_path_keeps_only_its_own_components():
    result = run.path_cells('virtio-blk', LOADS, console_of('virtio-blk'), samples_of(daemon=False))
    assert result['problems'] == []
    assert [cell['cpu_s'] for cell in result['cells'].values()] == [{'qemu': 1.5}, {'qemu': 1.5}]
    native = run.path_cells('host-native', LOADS, console_of('host-native'))
    assert [cell['cpu_s'] for cell in native['cells'].values()] == [{}, {}]


def test_missing_samples_leave_the_cpu_null_and_say_so():
    result = run.path_cells('vhost-blk-pci', LOADS, console_of('vhost-blk-pci'), 'HZ 100\n')
    cell = result['cells'][LOADS[0]['name']]
    assert cell['cpu_s'] == {'qemu': None, 'kernel_workers': None}
    assert 'no host CPU samples for qemu, kernel_workers' in cell['notes']
    assert model.cell_missing_fields(cell, 'vhost-blk-pci') == ['cpu_s.qemu', 'cpu_s.kernel_workers']


def test_failed_and_missing_runs_are_problems_not_cells():
    result = run.path_cells('vhost-user', LOADS, console_of('vhost-user', rc=1, drop=LOADS[1]['name']), samples_of())
    assert sorted(result['cells']) == [LOADS[0]['name']]
    assert f'vhost-user {LOADS[0]["name"]}: fio failed with status 1' in result['problems']
    assert f'vhost-user {LOADS[1]["name"]}: no fio output on the console' in result['problems']
    never = run.path_cells('vhost-user', LOADS, 'Kernel panic - not syncing', samples_of())
    assert never['cells'] == {} and len(never['problems']) == 2
    with pytest.raises(model.BenchModelError, match='unknown path'):
        run.path_cells('nvme', LOADS, '', None)


def test_cpu_seconds_need_both_edges_and_a_clock():
    assert run.cpu_seconds('BEGIN a 1 2 3\nEND a 5 6 7\n') == {'a': {}}
    assert run.cpu_seconds('HZ 100\nBEGIN a 100 -1 0\n') == {'a': {}}
    assert run.cpu_seconds('HZ 250\nBEGIN a 100 -1 0\nEND a 350 -1 50\n') == {'a': {'qemu': 1.0, 'kernel_workers': 0.2}}


def test_the_document_of_a_run_validates_and_lists_what_was_skipped():
    full = host_doc()
    results = dict((path, full['results'][path]) for path in ('host-native', 'virtio-blk', 'vhost-user'))
    results['vhost-blk-pci'] = {}
    doc = run.document(full['host'], LOADS, results, {'vhost-blk-pci': 'the patched QEMU is not installed'},
                       ['the guests ran under TCG'])
    assert doc['schema_version'] == 1 and 'vhost-blk-pci' not in doc['results']
    assert model.missing_cells(doc) == []
    assert doc['notes'] == ['the guests ran under TCG']
    with pytest.raises(model.BenchModelError, match='host.backing.kind'):
        run.document(dict(full['host'], backing={'path': '/x', 'kind': 'nfs', 'size_bytes': 1}), LOADS, results)
