# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark result documents for the tests, built from real fio output.

The fio outputs in fixtures/fio/ were made with fio 3.33 on the development host against an
8 MiB file (they are real measurements of that machine, not of a hypervisor):

  fio --name=4k-randread-qd1-j1 --filename=/tmp/fiofix/data --size=8M --rw=randread --bs=4k \
      --runtime=1 --time_based --output-format=json                                > randread-qd1-j1.json
  fio --name=4k-randwrite-qd8-j2 ... --rw=randwrite --bs=4k --ioengine=io_uring --iodepth=8 --numjobs=2 \
      --group_reporting ... --output-format=json                                   > randwrite-qd8-j2-group.json
  fio --name=128k-read-qd4-j2 ... --rw=read --bs=128k --ioengine=libaio --iodepth=4 --numjobs=2 \
      ... --output-format=json      (no group_reporting: one entry per job)         > read-qd4-j2-pertask.json
  fio --name=4k-randread-qd4-j2 ... --rw=randread --bs=4k --ioengine=libaio --iodepth=4 --numjobs=2 \
      ... --output-format=json+     (one entry per job, with latency histograms)    > randread-qd4-j2-jsonplus.json
  fio --name=4k-randwrite-qd1-j1 ... --rw=randwrite --bs=4k --clat_percentiles=0 \
      ... --output-format=json      (no percentiles)                                > randwrite-qd1-j1-nopct.json

fixtures/fio/host/PATH-WORKLOAD.json: one host's matrix, two workloads (4k randread qd1 1 job;
4k randwrite qd4 2 jobs with --group_reporting), for each PATH fio with another ioengine (host-native
io_uring, virtio-blk psync, vhost-user libaio, vhost-blk-pci pvsync2) so that the paths differ:

  fio --name=WORKLOAD --filename=/tmp/fiofix/data --size=8M --rw=RW --bs=4k --iodepth=QD --numjobs=J \
      [--group_reporting] --ioengine=ENGINE --runtime=1 --time_based --output-format=json

With psync and pvsync2 at qd4 fio prints a note before the JSON on stdout, as it does on hosts.

The host CPU seconds of a cell stand in for the role's /proc samples: fio's own user CPU time of
that run as ``qemu``, its system time as ``daemon`` and ``kernel_workers``.
"""


import copy
import os

from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_fio as fio

FIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'fio')
WORKLOADS = (
    {'name': '4k-randread-qd1-j1', 'rw': 'randread', 'bs': '4k', 'iodepth': 1, 'numjobs': 1},
    {'name': '4k-randwrite-qd4-j2', 'rw': 'randwrite', 'bs': '4k', 'iodepth': 4, 'numjobs': 2},
)


def fio_text(name):
    with open(os.path.join(FIO, name)) as handle:
        return handle.read()


def fio_cpu_seconds(text, path):
    """fio's user and system CPU seconds of the run, as the components ``path`` reports."""
    job = fio.load(text)['jobs'][0]
    seconds = job['job_runtime'] / 1000.0
    usr, sys_ = job['usr_cpu'] * seconds / 100.0, job['sys_cpu'] * seconds / 100.0
    stand_in = {'qemu': usr, 'daemon': sys_, 'kernel_workers': sys_}
    return dict((name, round(stand_in[name], 6)) for name in model.CPU_EXPECTED[path])


def host_doc(hostname='kvm01', emulated=False, paths=model.PATHS):
    """A complete document; the cell of PATHS[i] comes from the fio run of ``paths[i]``."""
    results = {}
    for path, source in zip(model.PATHS, paths):
        for load in WORKLOADS:
            text = fio_text(os.path.join('host', f'{source}-{load["name"]}.json'))
            results.setdefault(path, {})[load['name']] = model.cell_from_fio(text, fio_cpu_seconds(text, path))
    return model.validate({
        'schema_version': 1,
        'host': {'hostname': hostname, 'kernel': '6.1.0-26-amd64', 'cpu_model': 'AMD EPYC 7302 16-Core Processor',
                 'ncpu': 32, 'qemu_version': '7.2.15', 'module_version': '0.1.0', 'emulated': emulated,
                 'backing': {'path': '/var/tmp/vhostblk-bench.raw', 'kind': 'file', 'size_bytes': 4294967296}},
        'workloads': [dict(load) for load in WORKLOADS],
        'results': results,
    })


def without(doc, path, workload, field=None):
    """A copy of ``doc`` without one cell, or with one of its fields (``clat_us.p99``) null."""
    doc = copy.deepcopy(doc)
    if field is None:
        del doc['results'][path][workload]
        return doc
    target = doc['results'][path][workload]
    if field.startswith(('clat_us.', 'cpu_s.')):
        group, field = field.split('.', 1)
        target = target[group]
    target[field] = None
    return doc
