# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The on-host side of the benchmark (roles/benchmark): its fio matrix, what a throwaway guest
printed, the host CPU samples taken over each run, and the host's result document.

The guest's payload prints, per workload NAME::

    BENCH-RUN-BEGIN NAME            (then pauses a second: the host samples its CPU counters)
    BENCH-RUN-END NAME rc=STATUS    (fio has ended; pauses again)
    BENCH-FIO-BEGIN NAME
    ...fio's JSON output...
    BENCH-FIO-END NAME

and the role's console watcher (files/bench_watch.py) writes, at each of the first two lines, one
line of tick counts: ``HZ TICKS_PER_SECOND`` first, then ``BEGIN|END NAME QEMU DAEMON WORKERS``
(-1 for a component that does not exist on that path).
"""


import re

from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model

RUN_END = re.compile(r'^BENCH-RUN-END (\S+) rc=(-?\d+)\s*$', re.M)
FIO_BLOCK = re.compile(r'^BENCH-FIO-BEGIN (\S+)\s*$(.*?)^BENCH-FIO-END \1\s*$', re.M | re.S)
SAMPLE = re.compile(r'^(BEGIN|END) (\S+) (-?\d+) (-?\d+) (-?\d+)\s*$', re.M)
HZ = re.compile(r'^HZ (\d+)\s*$', re.M)
SAMPLED = ('qemu', 'daemon', 'kernel_workers')
MAX_IODEPTH = 1024
MAX_NUMJOBS = 64


def workload_name(load):
    """The name of a workload: ``4k-randread-qd1-j1``."""
    return f"{load['bs']}-{load['rw']}-qd{load['iodepth']}-j{load['numjobs']}"


def workloads(spec, variable='workloads'):
    """The fio matrix from a role variable: each entry with ``rw``, ``bs``, ``iodepth`` (1) and
    ``numjobs`` (1), and its ``name`` (made from those when not given). Raises BenchModelError
    naming ``variable`` and the entry for every problem."""
    if not isinstance(spec, list) or not spec:
        raise model.BenchModelError([f'{variable}: expected a non-empty list of workloads, got {spec!r}'])
    loads = []
    problems = []
    for index, entry in enumerate(spec):
        if not isinstance(entry, dict):
            problems.append(f'{variable}[{index}]: expected a dictionary with rw and bs, got {entry!r}')
            continue
        load = {'rw': entry.get('rw'), 'bs': entry.get('bs'),
                'iodepth': entry.get('iodepth', 1), 'numjobs': entry.get('numjobs', 1)}
        if isinstance(load['bs'], int) and not isinstance(load['bs'], bool):
            load['bs'] = str(load['bs'])
        for key, limit in (('iodepth', MAX_IODEPTH), ('numjobs', MAX_NUMJOBS)):
            value = load[key]
            if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= limit:
                problems.append(f'{variable}[{index}].{key}: expected 1 to {limit}, got {value!r}')
        name = entry.get('name')
        if name is None and all(isinstance(load[key], (str, int)) for key in load):
            name = workload_name(load)
        if isinstance(name, str) and not re.match(r'^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$', name):
            problems.append(f'{variable}[{index}].name: letters, digits, _ . + - only (at most 64), got {name!r}')
        load = dict(name=name, **load)
        found = []
        model.check_workloads([load], found)  # types, rw, bs
        problems += [problem.replace('workloads[0]', f'{variable}[{index}]', 1) for problem in found]
        if isinstance(name, str) and name in [other['name'] for other in loads]:
            problems.append(f'{variable}[{index}].name: {name!r} is declared twice')
        loads.append(load)
    if problems:
        raise model.BenchModelError(problems)
    return loads


def guest_runs(console):
    """{workload name: {'rc': fio's exit status or None, 'fio': fio's output or None}} from a console."""
    console = (console or '').replace('\r', '')
    runs = {}
    for name, status in RUN_END.findall(console):
        runs.setdefault(name, {'rc': None, 'fio': None})['rc'] = int(status)
    for name, text in FIO_BLOCK.findall(console):
        runs.setdefault(name, {'rc': None, 'fio': None})['fio'] = text
    return runs


def cpu_seconds(samples):
    """{workload name: {component: CPU seconds between the run's BEGIN and END samples}}.

    A component sampled as -1 (absent on that path, or gone) is left out of the run's entry."""
    match = HZ.search(samples or '')
    hz = int(match.group(1)) if match else 0
    seen = {}
    for edge, name, *ticks in SAMPLE.findall(samples or ''):
        seen.setdefault(name, {})[edge] = [int(value) for value in ticks]
    result = {}
    for name, edges in seen.items():
        begin, end = edges.get('BEGIN'), edges.get('END')
        if not hz or begin is None or end is None:
            result[name] = {}
            continue
        result[name] = dict((component, round((after - before) / float(hz), 3))
                            for component, before, after in zip(SAMPLED, begin, end)
                            if before >= 0 and after >= before)
    return result


def path_cells(path, loads, console, samples=None):
    """The cells of one path from its guest's console and the CPU samples (None: no CPU expected).

    Returns {'cells': {workload: cell}, 'problems': [...]}: a workload whose run failed or printed
    no fio output has no cell and a problem saying why."""
    if path not in model.PATHS:
        raise model.BenchModelError([f'unknown path {path!r} (known: {", ".join(model.PATHS)})'])
    runs = guest_runs(console)
    cpu = cpu_seconds(samples) if samples is not None else {}
    cells, problems = {}, []
    for load in loads:
        name = load['name']
        run = runs.get(name)
        if run is None:
            problems.append(f'{path} {name}: the guest never reported this run')
            continue
        if run['rc'] not in (0, None):
            problems.append(f'{path} {name}: fio failed with status {run["rc"]}')
        if run['fio'] is None:
            problems.append(f'{path} {name}: no fio output on the console')
            continue
        wanted = dict((component, seconds) for component, seconds in cpu.get(name, {}).items()
                      if component in model.CPU_EXPECTED[path])
        try:
            cells[name] = model.cell_from_fio(run['fio'], wanted)
        except model.BenchModelError as exc:
            problems.extend(f'{path} {name}: {problem}' for problem in exc.problems)
            continue
        missing = [component for component in model.CPU_EXPECTED[path] if component not in wanted]
        if samples is not None and missing:
            cells[name]['notes'].append(f'no host CPU samples for {", ".join(missing)}')
            for component in missing:
                cells[name]['cpu_s'][component] = None
    return {'cells': cells, 'problems': problems}


def document(host, loads, results, skipped=None, notes=None):
    """The host's validated result document (schema_version 1)."""
    doc = {'schema_version': model.SCHEMA_VERSION, 'host': host, 'workloads': loads,
           'results': dict((path, cells) for path, cells in (results or {}).items() if cells),
           'skipped': dict(skipped or {})}
    if notes:
        doc['notes'] = list(notes)
    return model.validate(doc)
