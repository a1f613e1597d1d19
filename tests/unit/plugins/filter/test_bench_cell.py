# SPDX-License-Identifier: GPL-2.0-or-later
"""The bench_cell filter: what a role gets from fio's stdout (fixtures: see ../bench_docs.py)."""


import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.filter.bench_cell import FilterModule
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.tests.unit.plugins.bench_docs import fio_text

bench_cell = FilterModule().filters()['bench_cell']


def test_a_cell_from_fio_stdout_with_its_notice_fits_a_document():
    text = fio_text('host/vhost-user-4k-randwrite-qd4-j2.json')
    cell = bench_cell(text, {'qemu': 1.5, 'daemon': 0.25, 'kernel_workers': 0.75})
    assert cell['iops'] > 0 and None not in cell['clat_us'].values()
    assert model.cell_missing_fields(cell, 'vhost-user') == []
    assert model.cpu_us_per_io(cell, 'vhost-user')['daemon'] == pytest.approx(0.25e6 / cell['ios'], abs=1e-3)


def test_not_fio_output_fails_the_template():
    with pytest.raises(AnsibleFilterError, match='bench_cell: no JSON object in the fio output'):
        bench_cell('fio: pid=123, err=2/file:filesetup.c:805, func=open(/dev/sdz), error=No such file')
