# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The benchmark report as one self-contained HTML page (charts embedded as PNG data URIs).

The page has no date or anything else that changes between two renderings of the same input,
so a rerun on unchanged results writes the same bytes.
"""


import base64
from html import escape

from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_report as report

MISSING = '<td class="missing">missing</td>'
NOT_APPLICABLE = '<td class="na">–</td>'
STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; }
td.label { text-align: left; }
td.missing { background: #fdd; color: #a00; font-weight: bold; text-align: center; }
td.na { color: #888; text-align: center; }
td.skipped { color: #666; font-style: italic; text-align: left; }
.banner { padding: 1em; margin: 1em 0; font-size: 1.2em; font-weight: bold; }
.banner.emulated { background: #fff3cd; border: 3px solid #d39e00; }
.banner.real { background: #e6f4ea; border: 2px solid #2e7d32; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
"""


def number(value, digits):
    """How the report writes a number: fixed decimals, no thousands separators."""
    return f'{value:.{digits}f}'


def _cell(row, key, digits):
    value = row['values'][key]
    if key in row['missing']:
        return MISSING
    if value is None:
        return NOT_APPLICABLE
    return f'<td>{number(value, digits)}</td>'


def _banner(summary):
    if summary['emulated']:
        hosts = ', '.join(escape(host) for host in summary['emulated_hosts'])
        return ('<div class="banner emulated" id="emulated">Emulated test hypervisor: the numbers of '
                f'{hosts} come from an emulated hypervisor (guests under emulation) and say nothing about '
                'real hardware.</div>')
    return ('<div class="banner real" id="emulated">Measured on real hypervisors: no host reports an '
            'emulated test hypervisor.</div>')


def _facts(host):
    backing = host['backing']
    size = backing.get('size_bytes')
    facts = (
        ('kernel', host.get('kernel')),
        ('CPU', host.get('cpu_model')),
        ('CPUs', host.get('ncpu')),
        ('QEMU', host.get('qemu_version')),
        ('vhost-blk module', host.get('module_version')),
        ('backing', backing.get('path')),
        ('backing kind', backing.get('kind')),
        ('backing size', None if size is None else f'{size} bytes ({size / 1073741824.0:.2f} GiB)'),
        ('emulated test hypervisor', 'yes' if host['emulated'] else 'no'),
    )
    items = ''.join(f'<tr><th>{escape(name)}</th>' +
                    (MISSING if value is None else f'<td class="label">{escape(str(value))}</td>') + '</tr>'
                    for name, value in facts)
    return f'<table class="facts">{items}</table>'


def _host_table(doc):
    head = ''.join(f'<th>{escape(header)}</th>' for _key, header, _digits in report.COLUMNS)
    lines = [f'<table class="host"><tr><th>workload</th><th>path</th>{head}</tr>']
    for row in report.host_rows(doc):
        label = (f'<td class="label">{escape(row["workload"])}</td>'
                 f'<td class="label">{escape(row["path"])}</td>')
        if row['skipped'] is not None:
            cells = (f'<td class="skipped" colspan="{len(report.COLUMNS)}">skipped: '
                     f'{escape(row["skipped"])}</td>')
        else:
            cells = ''.join(_cell(row, key, digits) for key, _header, digits in report.COLUMNS)
        lines.append(f'<tr data-path="{escape(row["path"])}" data-workload="{escape(row["workload"])}">'
                     f'{label}{cells}</tr>')
    lines.append('</table>')
    return '\n'.join(lines)


def _img(png, alt):
    data = base64.b64encode(png).decode('ascii')
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _stats_cell(stats, digits):
    if stats is None:
        return NOT_APPLICABLE
    return (f'<td>{number(stats["median"], digits)} ({number(stats["min"], digits)}–'
            f'{number(stats["max"], digits)}, {stats["hosts"]} hosts)</td>')


def _summary_table(summary):
    digits = dict((key, digits) for key, _header, digits in report.COLUMNS)
    headers = dict((key, header) for key, header, _digits in report.COLUMNS)
    head = ''.join(f'<th>{escape(headers[key])}: median (min–max)</th>' for key in report.SUMMARY_VALUES)
    lines = [f'<table class="fleet"><tr><th>workload</th><th>path</th>{head}</tr>']
    for workload in summary['workloads']:
        for path in summary['paths']:
            stats = summary['cells'][path][workload]
            cells = ''.join(_stats_cell(stats[key], digits[key]) for key in report.SUMMARY_VALUES)
            lines.append(f'<tr><td class="label">{escape(workload)}</td><td class="label">{escape(path)}</td>'
                         f'{cells}</tr>')
    lines.append('</table>')
    return '\n'.join(lines)


def _missing_list(summary):
    if not summary['missing']:
        return '<p id="missing">Every cell has a value.</p>'
    items = ''.join('<li>' + escape(' '.join(str(entry[key]) for key in ('host', 'path', 'workload', 'field')
                                             if entry[key] is not None)) + '</li>'
                    for entry in summary['missing'])
    return f'<p id="missing">{len(summary["missing"])} value(s) missing:</p><ul>{items}</ul>'


def render(docs, summary, charts, title):
    """The page. ``charts`` maps a host name to {'iops': PNG bytes, 'latency': PNG bytes} (may be empty)."""
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
             f'<title>{escape(title)}</title><style>{STYLE}</style></head><body>',
             f'<h1>{escape(title)}</h1>', _banner(summary),
             '<p>Ratios are IOPS of the path divided by IOPS of QEMU\'s virtio-blk (× virtio-blk) and of fio '
             'on the host against the same backing (× host-native). CPU µs/IO is host CPU time per completed '
             'I/O: QEMU\'s threads, the vhost-user daemon, the vhost-blk kernel workers.</p>',
             '<h2>Fleet summary</h2>', _summary_table(summary), _missing_list(summary)]
    for doc in docs:
        host = doc['host']
        tag = ' (emulated test hypervisor)' if host['emulated'] else ''
        parts += [f'<h2 id="host-{escape(host["hostname"])}">{escape(host["hostname"])}{escape(tag)}</h2>',
                  _facts(host), _host_table(doc)]
        for kind, png in sorted(charts.get(host['hostname'], {}).items()):
            parts.append(_img(png, f'{kind} of {host["hostname"]}'))
    parts.append('</body></html>')
    return '\n'.join(parts) + '\n'
