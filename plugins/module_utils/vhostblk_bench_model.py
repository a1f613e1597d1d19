# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""One hypervisor's benchmark result (playbooks/benchmark.yml): a JSON document.

    {"schema_version": 1,
     "host": {"hostname": "kvm01", "kernel": "6.1.0-26-amd64", "cpu_model": "AMD EPYC 7302", "ncpu": 32,
              "qemu_version": "7.2.15", "module_version": "0.1.0", "emulated": false,
              "backing": {"path": "/var/tmp/vhostblk-bench.raw", "kind": "file", "size_bytes": 4294967296}},
     "workloads": [{"name": "4k-randread-qd1-j1", "rw": "randread", "bs": "4k", "iodepth": 1, "numjobs": 1}],
     "results": {PATH: {WORKLOAD NAME: CELL}},
     "skipped": {"vhost-blk-pci": "the patched QEMU is not installed"}}

PATH is one of PATHS. A CELL (made by cell_from_fio) holds ``iops``, ``bw_mib_s``, ``ios`` (I/Os
completed), ``clat_us`` (``p50``, ``p99``, ``p99.9`` completion latency, µs), ``cpu_s`` (host CPU
seconds over the run per component: ``qemu`` all threads of the QEMU process, ``daemon`` the
vhost-blk-user back end, ``kernel_workers`` the module's vhost worker threads), optionally ``fio``
(what fio itself reported it ran: ``rw``, ``bs``, ``iodepth``, ``numjobs``, ``version``) and
``notes``. Any number may be null: it is then reported as missing.
"""


from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_fio as fio

SCHEMA_VERSION = 1
PATHS = ('host-native', 'virtio-blk', 'vhost-user', 'vhost-blk-pci')
BASELINES = (('vs_virtio_blk', 'virtio-blk'), ('vs_host_native', 'host-native'))
CPU_COMPONENTS = ('qemu', 'daemon', 'kernel_workers')
# The components whose CPU time a path is expected to report.
CPU_EXPECTED = {
    'host-native': (),
    'virtio-blk': ('qemu',),
    'vhost-user': ('qemu', 'daemon', 'kernel_workers'),
    'vhost-blk-pci': ('qemu', 'kernel_workers'),
}
HOST_TEXT = ('kernel', 'cpu_model', 'qemu_version', 'module_version')
BACKING_KINDS = ('file', 'block')
FIO_RW = ('read', 'write', 'randread', 'randwrite', 'rw', 'readwrite', 'randrw', 'trim', 'randtrim')
CELL_KEYS = ('iops', 'bw_mib_s', 'ios', 'clat_us', 'cpu_s', 'fio', 'notes')
PERCENTILE_NAMES = tuple(name for name, _pct in fio.PERCENTILES)


class BenchModelError(ValueError):
    """A document or a fio output that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems):
        super().__init__('; '.join(problems))
        self.problems = list(problems)


# --------------------------------------------------------------------------
# one cell from fio
# --------------------------------------------------------------------------

def _sum_or_none(values):
    return None if not values or None in values else sum(values)


def cell_from_fio(text, cpu_s=None):
    """A result cell from fio's JSON output (and the host CPU seconds per component over the run).

    Raises BenchModelError when the output is not fio JSON at all; pieces that are absent (a
    percentile fio did not report, percentiles across separately reported jobs without ``json+``
    histograms) are null and explained in ``notes``.
    """
    try:
        doc = fio.load(text)
        found = fio.parts(doc)
    except fio.FioError as exc:
        raise BenchModelError([str(exc)]) from None
    notes = []
    errors = sorted(set(job.get('error') for job in doc['jobs'] if job.get('error')))
    if errors:
        notes.append(f'fio reported error(s) {errors}')
    if not found:
        raise BenchModelError(['fio output has no read or write statistics for its workload'])
    iops = _sum_or_none([fio.number(stats.get('iops')) for _job, _side, stats in found])
    ios = _sum_or_none([fio.number(stats.get('total_ios')) for _job, _side, stats in found])
    rates = []
    for _job, _side, stats in found:
        rate = fio.number(stats.get('bw_bytes'))
        if rate is None and fio.number(stats.get('bw')) is not None:
            rate = stats['bw'] * 1024  # KiB/s, fio before 3.0
        rates.append(rate)
    bw = _sum_or_none(rates)
    for name, value in (('iops', iops), ('total_ios', ios), ('bandwidth', bw)):
        if value is None:
            notes.append(f'fio reported no {name}')
    clat_ns = _percentiles(found, notes)
    job = found[0][0]
    opts = fio.options(doc, job)
    cell = {
        'iops': None if iops is None else round(iops, 3),
        'bw_mib_s': None if bw is None else round(bw / 1048576.0, 3),
        'ios': None if ios is None else int(ios),
        'clat_us': dict((name, None if clat_ns.get(name) is None else round(clat_ns[name] / 1000.0, 3))
                        for name in PERCENTILE_NAMES),
        'cpu_s': dict(cpu_s or {}),
        'fio': {'rw': opts.get('rw', 'read'), 'bs': opts.get('bs', '4k'),
                'iodepth': _int(opts.get('iodepth', 1)), 'numjobs': _int(opts.get('numjobs', 1)),
                'version': doc.get('fio version')},
        'notes': notes,
    }
    problems = []
    _check_cell(cell, 'cell', problems)
    if problems:
        raise BenchModelError(problems)
    return cell


def _percentiles(found, notes):
    if len(found) == 1:
        clat = found[0][2].get('clat_ns')
        table = fio.percentile_table(clat)
        for name, pct in fio.PERCENTILES:
            if name not in table:
                notes.append(f'fio reported no {pct:g}th completion latency percentile '
                             '(clat_percentiles off, or not in percentile_list)')
        return table
    bins = [(stats.get('clat_ns') or {}).get('bins') for _job, _side, stats in found]
    if all(isinstance(one, dict) and one for one in bins):
        return fio.percentiles_from_bins(bins)
    notes.append(f'fio reported {len(found)} job entries or sides separately and no latency histograms: '
                 'percentiles across them are unknown (run fio with --group_reporting or --output-format=json+)')
    return {}


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _expect(problems, where, value, ok, what, nullable=True):
    if value is None and nullable:
        return
    if value is None or not ok(value):
        problems.append(f'{where}: expected {what}, got {value!r}')


def _check_keys(problems, where, value, allowed, required=()):
    if not isinstance(value, dict):
        problems.append(f'{where}: expected an object, got {value!r}')
        return False
    for key in sorted(set(value) - set(allowed)):
        problems.append(f'{where}: unknown key {key!r} (known: {", ".join(allowed)})')
    for key in required:
        if key not in value:
            problems.append(f'{where}: {key!r} is required')
    return True


def size_bytes(bs):
    """A fio block size (4096, '4k', '128K', '1m'; of 'R,W' the first) in bytes, None if unreadable."""
    if _is_int(bs):
        return bs
    if not isinstance(bs, str) or not bs.strip():
        return None
    text = bs.split(',')[0].strip().lower().rstrip('b').rstrip('i')
    scale = {'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    return int(digits) * scale if digits.isdigit() else None


def _non_negative(value):
    return fio.number(value) is not None and value >= 0


def _check_cell(cell, where, problems):
    if not _check_keys(problems, where, cell, CELL_KEYS):
        return
    _expect(problems, f'{where}.iops', cell.get('iops'), _non_negative, 'a number >= 0')
    _expect(problems, f'{where}.bw_mib_s', cell.get('bw_mib_s'), _non_negative, 'a number >= 0')
    _expect(problems, f'{where}.ios', cell.get('ios'), lambda v: _is_int(v) and v >= 0, 'an integer >= 0')
    clat = cell.get('clat_us', {})
    if _check_keys(problems, f'{where}.clat_us', clat, PERCENTILE_NAMES):
        for name, value in clat.items():
            _expect(problems, f'{where}.clat_us.{name}', value, _non_negative, 'a number >= 0')
    cpu = cell.get('cpu_s', {})
    if _check_keys(problems, f'{where}.cpu_s', cpu, CPU_COMPONENTS):
        for name, value in cpu.items():
            _expect(problems, f'{where}.cpu_s.{name}', value, _non_negative, 'a number of seconds >= 0')
    if 'fio' in cell:
        _check_keys(problems, f'{where}.fio', cell['fio'], ('rw', 'bs', 'iodepth', 'numjobs', 'version'))
    notes = cell.get('notes', [])
    _expect(problems, f'{where}.notes', notes,
            lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), 'a list of strings')


def _check_host(host, problems):
    allowed = ('hostname', 'emulated', 'ncpu', 'backing') + HOST_TEXT
    if not _check_keys(problems, 'host', host, allowed, required=allowed):
        return
    _expect(problems, 'host.hostname', host.get('hostname'), lambda v: isinstance(v, str) and v.strip(),
            'a host name', nullable=False)
    _expect(problems, 'host.emulated', host.get('emulated'), lambda v: isinstance(v, bool),
            'true or false (whether the host is an emulated test hypervisor)', nullable=False)
    for key in HOST_TEXT:
        _expect(problems, f'host.{key}', host.get(key), lambda v: isinstance(v, str), 'a string or null')
    _expect(problems, 'host.ncpu', host.get('ncpu'), lambda v: _is_int(v) and v > 0, 'an integer > 0')
    backing = host.get('backing')
    if _check_keys(problems, 'host.backing', backing, ('path', 'kind', 'size_bytes'),
                   required=('path', 'kind', 'size_bytes')):
        _expect(problems, 'host.backing.path', backing['path'], lambda v: isinstance(v, str), 'a string')
        _expect(problems, 'host.backing.kind', backing['kind'], lambda v: v in BACKING_KINDS,
                ' or '.join(BACKING_KINDS))
        _expect(problems, 'host.backing.size_bytes', backing['size_bytes'], lambda v: _is_int(v) and v > 0,
                'an integer > 0')


def _check_workloads(workloads, problems):
    if not isinstance(workloads, list) or not workloads:
        problems.append(f'workloads: expected a non-empty list, got {workloads!r}')
        return {}
    by_name = {}
    keys = ('name', 'rw', 'bs', 'iodepth', 'numjobs')
    for index, load in enumerate(workloads):
        where = f'workloads[{index}]'
        if not _check_keys(problems, where, load, keys, required=keys):
            continue
        name = load['name']
        _expect(problems, f'{where}.name', name, lambda v: isinstance(v, str) and v.strip(), 'a name',
                nullable=False)
        if isinstance(name, str) and name in by_name:
            problems.append(f'{where}.name: {name!r} is declared twice')
        _expect(problems, f'{where}.rw', load['rw'], lambda v: v in FIO_RW, 'one of ' + ', '.join(FIO_RW),
                nullable=False)
        _expect(problems, f'{where}.bs', load['bs'], size_bytes, 'a block size like 4k',
                nullable=False)
        for key in ('iodepth', 'numjobs'):
            _expect(problems, f'{where}.{key}', load[key], lambda v: _is_int(v) and v > 0, 'an integer > 0',
                    nullable=False)
        if isinstance(name, str):
            by_name[name] = load
    return by_name


check_workloads = _check_workloads


def _check_fio_agrees(cell, load, where, problems):
    ran = cell.get('fio')
    if not isinstance(ran, dict) or not isinstance(load, dict):
        return
    for key in ('rw', 'iodepth', 'numjobs'):
        if key in ran and ran[key] != load.get(key):
            problems.append(f'{where}: fio ran {key}={ran[key]!r}, the workload says {load.get(key)!r}')
    if 'bs' in ran and size_bytes(ran['bs']) != size_bytes(load.get('bs')):
        problems.append(f'{where}: fio ran bs={ran["bs"]!r}, the workload says {load.get("bs")!r}')


def validate(doc):
    """Raise BenchModelError listing every problem of a host document; return it unchanged when good."""
    problems = []
    if not isinstance(doc, dict):
        raise BenchModelError([f'expected a JSON object, got {type(doc).__name__}'])
    if 'schema_version' not in doc:
        raise BenchModelError(['no schema_version: not a vhost-blk benchmark result'])
    if doc['schema_version'] != SCHEMA_VERSION:
        raise BenchModelError([f'schema_version {doc["schema_version"]!r} is not supported '
                               f'(this collection reads {SCHEMA_VERSION})'])
    _check_keys(problems, 'document', doc, ('schema_version', 'host', 'workloads', 'results', 'skipped', 'notes'),
                required=('host', 'workloads', 'results'))
    _check_host(doc.get('host'), problems)
    loads = _check_workloads(doc.get('workloads'), problems)
    skipped = doc.get('skipped', {})
    if _check_keys(problems, 'skipped', skipped, PATHS):
        for path, reason in skipped.items():
            _expect(problems, f'skipped.{path}', reason, lambda v: isinstance(v, str) and v.strip(),
                    'the reason the path was not measured', nullable=False)
    results = doc.get('results')
    if _check_keys(problems, 'results', results, PATHS):
        for path, cells in results.items():
            if path in skipped:
                problems.append(f'results.{path}: the path is also listed as skipped')
            if not _check_keys(problems, f'results.{path}', cells, sorted(loads)):
                continue
            for name, cell in cells.items():
                _check_cell(cell, f'results.{path}.{name}', problems)
                _check_fio_agrees(cell, loads.get(name), f'results.{path}.{name}', problems)
    if problems:
        raise BenchModelError(problems)
    return doc


# --------------------------------------------------------------------------
# derived values
# --------------------------------------------------------------------------

def workload_names(doc):
    return [load['name'] for load in doc['workloads']]


def cell(doc, path, workload):
    """The cell of ``path`` and ``workload``, None when the document has none."""
    return (doc['results'].get(path) or {}).get(workload)


def cpu_us_per_io(one, path):
    """{component: µs of host CPU per I/O or None} for the components ``path`` reports, and ``total``."""
    ios = one.get('ios') if one else None
    cpu = (one or {}).get('cpu_s') or {}
    names = [name for name in CPU_COMPONENTS if name in CPU_EXPECTED[path] or cpu.get(name) is not None]
    result = {}
    for name in names:
        seconds = cpu.get(name)
        result[name] = None if seconds is None or not ios else round(seconds * 1e6 / ios, 3)
    values = list(result.values())
    result['total'] = None if not values or None in values else round(sum(values), 3)
    return result


def ratio(one, base):
    """IOPS of ``one`` divided by those of ``base``; None when either is unknown or the base is 0."""
    top = (one or {}).get('iops')
    bottom = (base or {}).get('iops')
    if top is None or not bottom:
        return None
    return round(top / bottom, 3)


def missing_cells(doc):
    """Every value the document should hold and does not, as {host, path, workload, field}."""
    host = doc['host']['hostname']
    missing = []
    for key in HOST_TEXT + ('ncpu',):
        if doc['host'].get(key) is None:
            missing.append({'host': host, 'path': None, 'workload': None, 'field': f'host.{key}'})
    for key in ('path', 'kind', 'size_bytes'):
        if doc['host']['backing'].get(key) is None:
            missing.append({'host': host, 'path': None, 'workload': None, 'field': f'host.backing.{key}'})
    skipped = doc.get('skipped', {})
    for workload in workload_names(doc):
        for path in PATHS:
            if path in skipped:
                continue
            for field in cell_missing_fields(cell(doc, path, workload), path):
                missing.append({'host': host, 'path': path, 'workload': workload, 'field': field})
    return missing


def cell_missing_fields(one, path):
    """The fields of a cell that have no value (``cell`` when the whole cell is absent)."""
    if one is None:
        return ['cell']
    fields = [key for key in ('iops', 'bw_mib_s', 'ios') if one.get(key) is None]
    clat = one.get('clat_us') or {}
    fields += [f'clat_us.{name}' for name in PERCENTILE_NAMES if clat.get(name) is None]
    cpu = one.get('cpu_s') or {}
    fields += [f'cpu_s.{name}' for name in CPU_EXPECTED[path] if cpu.get(name) is None]
    return fields
