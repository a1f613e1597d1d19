# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Reading fio's JSON output (``--output-format=json`` or ``json+``).

One fio run may report one job (``numjobs=1``, or any ``numjobs`` with ``group_reporting``) or
one entry per job clone; a mixed workload (``randrw``) reports a read and a write side. Counts
and rates add up over all of them. Completion latency percentiles come from fio's own
``percentile`` table when there is exactly one part; over several parts they are computed from
the latency histograms (``bins``, only in ``json+``), else they are unknown: percentiles of
separate jobs cannot be combined.
"""


import json

# Our percentile names and the fio percentile each one is.
PERCENTILES = (('p50', 50.0), ('p99', 99.0), ('p99.9', 99.9))
DIRECTIONS = ('read', 'write', 'trim')


class FioError(ValueError):
    """fio's output cannot be read at all."""


def load(text):
    """The JSON document in fio's output; text before it (fio's warnings on stdout) is skipped."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    if not isinstance(text, str):
        raise FioError(f'fio output must be text, got {type(text).__name__}')
    start = text.find('{')
    if start < 0:
        raise FioError('no JSON object in the fio output' + _excerpt(text))
    try:
        doc, _end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError as exc:
        raise FioError(f'fio output is not valid JSON ({exc})' + _excerpt(text)) from None
    jobs = doc.get('jobs') if isinstance(doc, dict) else None
    if not isinstance(jobs, list) or not jobs:
        raise FioError('fio output has no "jobs" list' + _excerpt(text))
    return doc


def _excerpt(text):
    text = text.strip()
    return f': {text[:80]!r}' if text else ': it is empty'


def directions_of(rw):
    """The sides of a fio ``rw`` value that carry its I/O."""
    if rw in ('read', 'randread'):
        return ('read',)
    if rw in ('write', 'randwrite'):
        return ('write',)
    if rw in ('trim', 'randtrim'):
        return ('trim',)
    return ('read', 'write')


def options(doc, job):
    """fio's options for ``job``: the global ones with the job's own on top."""
    merged = dict(doc.get('global options') or {})
    merged.update(job.get('job options') or {})
    return merged


def number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def percentile_table(clat):
    """fio's ``percentile`` table of one part as {our name: ns}, the names it lacks absent."""
    table = clat.get('percentile') if isinstance(clat, dict) else None
    if not isinstance(table, dict):
        return {}
    wanted = {}
    for key, value in table.items():
        try:
            point = float(key)
        except ValueError:
            continue
        for name, pct in PERCENTILES:
            if abs(point - pct) < 1e-6 and number(value) is not None:
                wanted[name] = value
    return wanted


def percentiles_from_bins(bins_list):
    """Percentiles (ns) of the merged histograms, the way fio computes them from its own."""
    merged = {}
    for bins in bins_list:
        for key, count in bins.items():
            merged[int(key)] = merged.get(int(key), 0) + int(count)
    total = sum(merged.values())
    result = {}
    if not total:
        return result
    for name, pct in PERCENTILES:
        running = 0
        for value in sorted(merged):
            running += merged[value]
            if running >= pct / 100.0 * total:
                result[name] = value
                break
    return result


def parts(doc):
    """(job, side name, side dict) for every job entry and every side its workload uses."""
    found = []
    for job in doc['jobs']:
        if not isinstance(job, dict):
            raise FioError('a fio job entry is not an object')
        rw = options(doc, job).get('rw', 'read')
        for side in directions_of(rw):
            stats = job.get(side)
            if isinstance(stats, dict):
                found.append((job, side, stats))
    return found
