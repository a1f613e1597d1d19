# SPDX-License-Identifier: GPL-2.0-or-later
"""Reading fio's JSON output (fixtures: see tests/unit/plugins/bench_docs.py for how they were made)."""


import json

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_fio as fio
from ansible_collections.vhostblk.fleet.tests.unit.plugins.bench_docs import fio_text


def test_percentiles_from_one_jobs_bins_are_fios_own():
    # json+ gives both fio's percentile table and the histogram it was computed from: for every
    # job entry our computation from the histogram must land on fio's own values.
    doc = fio.load(fio_text('randread-qd4-j2-jsonplus.json'))
    assert len(doc['jobs']) == 2
    for job in doc['jobs']:
        clat = job['read']['clat_ns']
        assert fio.percentiles_from_bins([clat['bins']]) == fio.percentile_table(clat)


def test_percentiles_from_merged_bins_lie_between_the_jobs():
    doc = fio.load(fio_text('randread-qd4-j2-jsonplus.json'))
    tables = [fio.percentile_table(job['read']['clat_ns']) for job in doc['jobs']]
    merged = fio.percentiles_from_bins([job['read']['clat_ns']['bins'] for job in doc['jobs']])
    assert set(merged) == {'p50', 'p99', 'p99.9'}
    for name in merged:
        assert min(t[name] for t in tables) <= merged[name] <= max(t[name] for t in tables)


def test_percentile_table_lacks_what_fio_did_not_report():
    doc = fio.load(fio_text('randwrite-qd1-j1-nopct.json'))
    assert fio.percentile_table(doc['jobs'][0]['write']['clat_ns']) == {}
    assert fio.percentile_table({'percentile': {'50.000000': 1000, '99.000000': 2000}}) == {'p50': 1000, 'p99': 2000}


def test_warnings_before_the_json_are_skipped():
    text = 'fio: io_uring not available, falling back\n' + fio_text('randread-qd1-j1.json')
    assert fio.load(text)['jobs'][0]['jobname'] == '4k-randread-qd1-j1'


@pytest.mark.parametrize('text, words', [
    ('', 'it is empty'),
    ('fio: failed to open /dev/nope', 'no JSON object'),
    ('{"jobs": [', 'not valid JSON'),
    ('{"fio version": "fio-3.33"}', 'no "jobs" list'),
    ('{"jobs": []}', 'no "jobs" list'),
    (None, 'must be text'),
])
def test_garbage_is_refused_with_a_reason(text, words):
    with pytest.raises(fio.FioError, match=words):
        fio.load(text)


def test_parts_follow_the_workloads_direction_and_every_job_entry():
    single = fio.load(fio_text('randread-qd1-j1.json'))
    assert [side for _job, side, _stats in fio.parts(single)] == ['read']
    per_task = fio.load(fio_text('read-qd4-j2-pertask.json'))
    assert [side for _job, side, _stats in fio.parts(per_task)] == ['read', 'read']
    mixed = json.loads(fio_text('randread-qd1-j1.json'))
    mixed['jobs'][0]['job options']['rw'] = 'randrw'
    assert [side for _job, side, _stats in fio.parts(mixed)] == ['read', 'write']


def test_global_options_are_under_the_jobs_own():
    doc = {'global options': {'rw': 'randread', 'bs': '4k'}, 'jobs': [{'job options': {'bs': '128k'}}]}
    assert fio.options(doc, doc['jobs'][0]) == {'rw': 'randread', 'bs': '128k'}
