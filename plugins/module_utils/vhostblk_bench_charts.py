# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""PNG charts of one host's benchmark result, drawn with matplotlib's Agg canvas (controller only).

matplotlib is imported when a chart is drawn, not when this file is: hypervisors never need it.
The PNGs carry no matplotlib version or date, so the same input gives the same bytes.
"""


import io

from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_report as report

COLORS = {'host-native': '#555555', 'virtio-blk': '#1f77b4', 'vhost-user': '#2ca02c', 'vhost-blk-pci': '#d62728'}
SHADES = {'p50': 1.0, 'p99': 0.65, 'p99.9': 0.35}


class MatplotlibMissing(ImportError):
    """matplotlib cannot be imported."""


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MatplotlibMissing(str(exc)) from None
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure):
    buf = io.BytesIO()
    figure.savefig(buf, format='png', metadata={'Software': None})
    return buf.getvalue()


def _title(doc, what):
    host = doc['host']
    return f'{host["hostname"]}: {what}' + (' (EMULATED test hypervisor)' if host['emulated'] else '')


def _mark(axes, x, row):
    """Write why a bar is absent at its foot."""
    text = 'skipped' if row['skipped'] is not None else 'missing'
    axes.text(x, 0.02, text, rotation=90, ha='center', va='bottom', fontsize=7,
              color='#a00' if text == 'missing' else '#666', transform=axes.get_xaxis_transform())


def _legend(axes):
    from matplotlib.patches import Patch
    axes.legend(handles=[Patch(color=COLORS[path], label=path) for path in model.PATHS], fontsize=8)


def _log_if_positive(axes, values):
    if any(value for value in values if value):
        axes.set_yscale('log')


def iops_chart(doc):
    """Grouped bars: IOPS per workload (groups) and path (bars)."""
    rows = report.host_rows(doc)
    workloads = model.workload_names(doc)
    width = 0.8 / len(model.PATHS)
    figure = _figure(max(6.0, 1.4 * len(workloads) + 2), 4.8)
    axes = figure.add_subplot(1, 1, 1)
    for index, path in enumerate(model.PATHS):
        offset = (index - (len(model.PATHS) - 1) / 2.0) * width
        for group, workload in enumerate(workloads):
            row = [one for one in rows if one['path'] == path and one['workload'] == workload][0]
            value = row['values']['iops']
            if value is None:
                _mark(axes, group + offset, row)
                continue
            axes.bar(group + offset, value, width, color=COLORS[path])
    _legend(axes)
    _log_if_positive(axes, [row['values']['iops'] for row in rows])
    axes.set_xticks(range(len(workloads)))
    axes.set_xticklabels(workloads, rotation=20, ha='right', fontsize=8)
    axes.set_ylabel('IOPS')
    axes.set_title(_title(doc, 'IOPS per workload and path'), fontsize=10)
    figure.tight_layout()
    return _png(figure)


def latency_chart(doc):
    """Per workload, p50/p99/p99.9 completion latency bars of each path."""
    rows = report.host_rows(doc)
    workloads = model.workload_names(doc)
    columns = 2 if len(workloads) > 1 else 1
    lines = (len(workloads) + columns - 1) // columns
    figure = _figure(6.0 * columns, 3.2 * lines + 0.6)
    width = 0.8 / len(model.PERCENTILE_NAMES)
    for number, workload in enumerate(workloads):
        axes = figure.add_subplot(lines, columns, number + 1)
        mine = [row for row in rows if row['workload'] == workload]
        for index, name in enumerate(model.PERCENTILE_NAMES):
            offset = (index - (len(model.PERCENTILE_NAMES) - 1) / 2.0) * width
            for group, row in enumerate(mine):
                value = row['values'][name]
                if value is None:
                    if index == 0:
                        _mark(axes, group, row)
                    continue
                axes.bar(group + offset, value, width, color=COLORS[row['path']], alpha=SHADES[name])
        _log_if_positive(axes, [row['values'][name] for row in mine for name in model.PERCENTILE_NAMES])
        axes.set_xticks(range(len(mine)))
        axes.set_xticklabels([row['path'] for row in mine], fontsize=8)
        axes.set_ylabel('µs (bars: p50, p99, p99.9)', fontsize=8)
        axes.set_title(workload, fontsize=9)
    figure.suptitle(_title(doc, 'completion latency p50 / p99 / p99.9'), fontsize=10)
    figure.tight_layout()
    return _png(figure)


def host_charts(doc):
    """{'iops': PNG bytes, 'latency': PNG bytes} of one host; raises MatplotlibMissing."""
    return {'iops': iops_chart(doc), 'latency': latency_chart(doc)}
