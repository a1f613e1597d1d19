# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""What the benchmark report shows: the rows of one host's table and the summary across hosts.

A row is one path under one workload. Its ``values`` hold the numbers to show (null where there
is none) and ``missing`` names those of its values that are absent because the host's document
lacks what they come from; a null value not in ``missing`` does not apply (a component the path
does not have, a ratio to a path that was skipped).
"""


from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model

# (key, header, number of decimals) of a host table's value columns, in order.
COLUMNS = (
    ('iops', 'IOPS', 0),
    ('bw_mib_s', 'MiB/s', 1),
    ('p50', 'p50 µs', 1),
    ('p99', 'p99 µs', 1),
    ('p99.9', 'p99.9 µs', 1),
    ('vs_virtio_blk', '× virtio-blk', 2),
    ('vs_host_native', '× host-native', 2),
    ('cpu.qemu', 'CPU µs/IO qemu', 2),
    ('cpu.daemon', 'CPU µs/IO daemon', 2),
    ('cpu.kernel_workers', 'CPU µs/IO kernel workers', 2),
    ('cpu.total', 'CPU µs/IO total', 2),
)
SUMMARY_VALUES = ('iops', 'vs_virtio_blk', 'vs_host_native', 'cpu.total')


def _row(doc, workload, path):
    skipped = doc.get('skipped', {})
    row = {'workload': workload, 'path': path, 'skipped': skipped.get(path), 'missing': [],
           'values': dict((key, None) for key, _header, _digits in COLUMNS)}
    if row['skipped'] is not None:
        return row
    one = model.cell(doc, path, workload)
    absent = model.cell_missing_fields(one, path)
    values = row['values']
    missing = set()
    if one is not None:
        values['iops'] = one.get('iops')
        values['bw_mib_s'] = one.get('bw_mib_s')
        for name in model.PERCENTILE_NAMES:
            values[name] = (one.get('clat_us') or {}).get(name)
    for key in ('iops', 'bw_mib_s'):
        if 'cell' in absent or key in absent:
            missing.add(key)
    for name in model.PERCENTILE_NAMES:
        if 'cell' in absent or f'clat_us.{name}' in absent:
            missing.add(name)
    for key, base_path in model.BASELINES:
        base = model.cell(doc, base_path, workload)
        values[key] = model.ratio(one, base)
        base_absent = base_path not in skipped and (base is None or base.get('iops') is None)
        if values[key] is None and ('iops' in missing or base_absent):
            missing.add(key)
    cpu = model.cpu_us_per_io(one, path)
    for name, value in cpu.items():
        values[f'cpu.{name}'] = value
    for name in model.CPU_EXPECTED[path]:
        if cpu.get(name) is None:
            missing.update((f'cpu.{name}', 'cpu.total'))
    row['missing'] = sorted(missing)
    return row


def host_rows(doc):
    """The rows of one host's table: every workload, and under it every path."""
    return [_row(doc, workload, path) for workload in model.workload_names(doc) for path in model.PATHS]


def _stats(values):
    values = sorted(value for value in values if value is not None)
    if not values:
        return None
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0
    return {'hosts': len(values), 'min': values[0], 'median': round(median, 3), 'max': values[-1]}


def fleet_summary(docs):
    """Across hosts, per path and workload: min, median and max of IOPS, ratios and CPU per I/O."""
    workloads = []
    for doc in docs:
        workloads += [name for name in model.workload_names(doc) if name not in workloads]
    rows = dict((doc['host']['hostname'], host_rows(doc)) for doc in docs)
    cells = {}
    for path in model.PATHS:
        for workload in workloads:
            found = [row for host_table in rows.values() for row in host_table
                     if row['path'] == path and row['workload'] == workload and row['skipped'] is None]
            cells.setdefault(path, {})[workload] = dict(
                (key, _stats([row['values'][key] for row in found])) for key in SUMMARY_VALUES)
    missing = [entry for doc in docs for entry in model.missing_cells(doc)]
    emulated = sorted(doc['host']['hostname'] for doc in docs if doc['host']['emulated'])
    return {
        'schema_version': model.SCHEMA_VERSION,
        'hosts': [dict(doc['host']) for doc in docs],
        'emulated': bool(emulated),
        'emulated_hosts': emulated,
        'paths': list(model.PATHS),
        'workloads': workloads,
        'cells': cells,
        'missing': missing,
    }
