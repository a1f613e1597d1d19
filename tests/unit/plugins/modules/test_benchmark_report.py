# SPDX-License-Identifier: GPL-2.0-or-later
"""vhostblk.fleet.benchmark_report on result documents built from real fio output (see bench_docs.py)."""


import json
from html.parser import HTMLParser

import matplotlib.image as matplotlib_image
import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.plugins.modules import benchmark_report
from ansible_collections.vhostblk.fleet.tests.unit.plugins.bench_docs import host_doc, without
from ansible_collections.vhostblk.fleet.tests.unit.plugins.module_harness import ModuleFail, run

# matplotlib is pinned in the venv (requirements-dev.txt): a missing one is an install failure, not a skip
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# What each value column of a host table must show: the cell's number with these decimals.
EXPECTED_COLUMNS = (
    ('IOPS', 0, lambda cell, cpu, ratios: cell['iops']),
    ('MiB/s', 1, lambda cell, cpu, ratios: cell['bw_mib_s']),
    ('p50', 1, lambda cell, cpu, ratios: cell['clat_us']['p50']),
    ('p99', 1, lambda cell, cpu, ratios: cell['clat_us']['p99']),
    ('p99.9', 1, lambda cell, cpu, ratios: cell['clat_us']['p99.9']),
    ('x virtio', 2, lambda cell, cpu, ratios: ratios[0]),
    ('x native', 2, lambda cell, cpu, ratios: ratios[1]),
    ('cpu qemu', 2, lambda cell, cpu, ratios: cpu.get('qemu')),
    ('cpu daemon', 2, lambda cell, cpu, ratios: cpu.get('daemon')),
    ('cpu workers', 2, lambda cell, cpu, ratios: cpu.get('kernel_workers')),
    ('cpu total', 2, lambda cell, cpu, ratios: cpu['total']),
)


class Tables(HTMLParser):
    """The text of the cells of every host-table row, by (host heading, path, workload)."""

    def __init__(self):
        super().__init__()
        self.rows, self.host, self.key, self.cell, self.in_h2 = {}, None, None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'h2':
            self.in_h2, self.host = True, ''
        elif tag == 'tr' and 'data-path' in attrs:
            self.key = (self.host.split(' ')[0], attrs['data-path'], attrs['data-workload'])
            self.rows[self.key] = []
        elif tag == 'td' and self.key:
            self.cell = ''

    def handle_endtag(self, tag):
        if tag == 'h2':
            self.in_h2 = False
        elif tag == 'td' and self.key and self.cell is not None:
            self.rows[self.key].append(self.cell)
            self.cell = None
        elif tag == 'tr':
            self.key = None

    def handle_data(self, data):
        if self.in_h2:
            self.host += data
        if self.cell is not None:
            self.cell += data


def _tables(page):
    parser = Tables()
    parser.feed(page)
    return parser.rows


def _write(tmp_path, *docs):
    src = tmp_path / 'results'
    src.mkdir(exist_ok=True)
    for doc in docs:
        (src / f'{doc["host"]["hostname"]}.json').write_text(json.dumps(doc))
    return src


def _report(monkeypatch, src, dest, check_mode=False, **extra):
    return run(monkeypatch, benchmark_report.main, dict({'src': [str(src)], 'dest': str(dest)}, **extra),
               check_mode=check_mode, diff=True)


def test_report_shows_every_value_of_every_host(monkeypatch, tmp_path):
    docs = [host_doc('kvm01'), host_doc('kvm02', paths=model.PATHS[::-1])]
    dest = tmp_path / 'report'
    result = _report(monkeypatch, _write(tmp_path, *docs), dest)
    assert result['changed'] is True and result['missing'] == [] and result['hosts'] == ['kvm01', 'kvm02']
    rows = _tables((dest / 'report.html').read_text())
    assert len(rows) == 2 * len(docs[0]['workloads']) * len(model.PATHS)
    for doc in docs:
        for load in doc['workloads']:
            for path in model.PATHS:
                cell = model.cell(doc, path, load['name'])
                ratios = [model.ratio(cell, model.cell(doc, base, load['name']))
                          for base in ('virtio-blk', 'host-native')]
                cpu = model.cpu_us_per_io(cell, path)
                shown = rows[(doc['host']['hostname'], path, load['name'])]
                assert shown[:2] == [load['name'], path]
                for (what, digits, pick), text in zip(EXPECTED_COLUMNS, shown[2:]):
                    value = pick(cell, cpu, ratios)
                    assert text == ('–' if value is None else f'{value:.{digits}f}'), (path, load['name'], what)
    page = (dest / 'report.html').read_text()
    assert 'Measured on real hypervisors' in page and 'Every cell has a value.' in page
    assert '<td class="missing">' not in page
    assert json.loads((dest / 'summary.json').read_text()) == result['summary']


def test_charts_are_valid_pngs(monkeypatch, tmp_path):
    dest = tmp_path / 'report'
    result = _report(monkeypatch, _write(tmp_path, host_doc('kvm01'), host_doc('kvm02.example.org')), dest)
    names = sorted(one['path'].rsplit('/', 1)[1] for one in result['files'])
    assert names == ['iops-kvm01.png', 'iops-kvm02.example.org.png', 'latency-kvm01.png',
                     'latency-kvm02.example.org.png', 'report.html', 'summary.json']
    for name in names[:4]:
        data = (dest / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC)
        pixels = matplotlib_image.imread(str(dest / name))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0  # something is drawn
    assert (dest / 'report.html').read_text().count('src="data:image/png;base64,') == 4


def test_check_mode_writes_nothing_and_a_second_run_changes_nothing(monkeypatch, tmp_path):
    src = _write(tmp_path, host_doc('kvm01'))
    dest = tmp_path / 'report'
    predicted = _report(monkeypatch, src, dest, check_mode=True)
    assert predicted['changed'] is True and all(one['changed'] for one in predicted['files'])
    assert not dest.exists()
    first = _report(monkeypatch, src, dest)
    assert first['changed'] is True
    contents = dict((path.name, path.read_bytes()) for path in dest.iterdir())
    second = _report(monkeypatch, src, dest)
    assert second['changed'] is False and second['diff'] == []
    assert not any(one['changed'] for one in second['files'])
    assert dict((path.name, path.read_bytes()) for path in dest.iterdir()) == contents
    assert _report(monkeypatch, src, dest, check_mode=True)['changed'] is False


def test_a_changed_input_rewrites_what_it_touches(monkeypatch, tmp_path):
    dest = tmp_path / 'report'
    _report(monkeypatch, _write(tmp_path, host_doc('kvm01'), host_doc('kvm02')), dest)
    doc = host_doc('kvm02')
    doc['results']['vhost-user']['4k-randread-qd1-j1']['iops'] *= 2
    result = _report(monkeypatch, _write(tmp_path, doc), dest, check_mode=True)
    changed = sorted(one['path'].rsplit('/', 1)[1] for one in result['files'] if one['changed'])
    assert changed == ['iops-kvm02.png', 'report.html', 'summary.json']
    assert [entry['before_header'].rsplit('/', 1)[1] for entry in result['diff']] == changed
    assert result['diff'][0]['before'].startswith('PNG, sha256 ')


def test_missing_cells_are_marked_and_returned(monkeypatch, tmp_path):
    doc = without(host_doc('kvm01'), 'vhost-user', '4k-randread-qd1-j1')
    doc = without(doc, 'virtio-blk', '4k-randwrite-qd4-j2', 'clat_us.p99')
    dest = tmp_path / 'report'
    result = _report(monkeypatch, _write(tmp_path, doc), dest)
    assert result['missing'] == [
        {'host': 'kvm01', 'path': 'vhost-user', 'workload': '4k-randread-qd1-j1', 'field': 'cell'},
        {'host': 'kvm01', 'path': 'virtio-blk', 'workload': '4k-randwrite-qd4-j2', 'field': 'clat_us.p99'},
    ]
    rows = _tables((dest / 'report.html').read_text())
    gone = rows[('kvm01', 'vhost-user', '4k-randread-qd1-j1')][2:]
    assert gone[:7] == ['missing'] * 7
    assert rows[('kvm01', 'virtio-blk', '4k-randwrite-qd4-j2')][2:][3] == 'missing'
    assert '2 value(s) missing' in (dest / 'report.html').read_text()


def test_emulated_hosts_are_announced(monkeypatch, tmp_path):
    dest = tmp_path / 'report'
    result = _report(monkeypatch, _write(tmp_path, host_doc('hv1', emulated=True), host_doc('kvm01')), dest)
    assert result['emulated'] is True
    page = (dest / 'report.html').read_text()
    assert 'class="banner emulated"' in page and 'the numbers of hv1 come from an emulated hypervisor' in page
    assert 'hv1 (emulated test hypervisor)</h2>' in page and 'kvm01</h2>' in page


def test_without_charts_no_png_is_written(monkeypatch, tmp_path):
    dest = tmp_path / 'report'
    result = _report(monkeypatch, _write(tmp_path, host_doc('kvm01')), dest, charts=False)
    assert sorted(path.name for path in dest.iterdir()) == ['report.html', 'summary.json']
    assert 'data:image/png' not in (dest / 'report.html').read_text() and result['missing'] == []


def test_a_bad_document_fails_naming_the_file_and_the_problem(monkeypatch, tmp_path):
    doc = host_doc('kvm01')
    doc['results']['virtio-blk']['4k-randread-qd1-j1']['iops'] = 'fast'
    src = _write(tmp_path, doc)
    (src / 'notes.json').write_text('not json')
    with pytest.raises(ModuleFail) as info:
        _report(monkeypatch, src, tmp_path / 'report')
    problems = info.value.result['problems']
    assert any(p.startswith(f'{src}/kvm01.json: results.virtio-blk.4k-randread-qd1-j1.iops') for p in problems)
    assert any(p.startswith(f'{src}/notes.json: ') for p in problems)
    assert not (tmp_path / 'report').exists()


def test_the_same_host_twice_fails(monkeypatch, tmp_path):
    src = _write(tmp_path, host_doc('kvm01'))
    (tmp_path / 'copy.json').write_text((src / 'kvm01.json').read_text())
    with pytest.raises(ModuleFail, match='host kvm01 already read from'):
        run(monkeypatch, benchmark_report.main, {'src': [str(src), str(tmp_path / 'copy.json')],
                                                 'dest': str(tmp_path / 'report')})


def test_no_documents_fails(monkeypatch, tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ModuleFail, match='no result documents found'):
        _report(monkeypatch, tmp_path / 'empty', tmp_path / 'report')
