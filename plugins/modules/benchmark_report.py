#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
# GNU General Public License v2.0 or later, so version 3 or later too (see https://www.gnu.org/licenses/gpl-2.0.txt)

# Ansible modules import after DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r'''
---
module: benchmark_report
short_description: Render the fleet benchmark report from the hypervisors' result documents
version_added: 0.1.0
description:
  - Reads one benchmark result document (JSON, C(schema_version) 1) per hypervisor, as the benchmark
    playbook collects them, checks each one, and writes into O(dest) a self-contained C(report.html)
    (a table per host with IOPS, bandwidth, completion latency p50/p99/p99.9, the ratio to QEMU's
    virtio-blk and to fio on the host, host CPU time per I/O per component; a fleet summary across
    hosts; a prominent note whether the numbers come from an emulated test hypervisor),
    C(summary.json) (the fleet summary) and, with O(charts), two PNG charts per host
    (C(iops-HOST.png), C(latency-HOST.png)).
  - Runs on the controller (delegated to C(localhost), once per play). A file is rewritten only when its
    content changes; files of hosts no longer in the input are left alone.
  - Every value a document lacks is shown as C(missing) in the report and listed in RV(missing).
author:
  - vhost-blk fleet developers (@vhostblk)
requirements:
  - matplotlib on the controller for O(charts) (the hypervisors need nothing).
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The text files are shown in full, a PNG by its SHA-256.
options:
  src:
    description:
      - Result documents, files or directories; of a directory every C(*.json) file directly in it is read.
    type: list
    elements: path
    required: true
  dest:
    description:
      - Directory to write the report into; created when missing.
    type: path
    required: true
  charts:
    description:
      - Draw the PNG charts (needs matplotlib) and embed them in the page.
    type: bool
    default: true
  title:
    description:
      - Title of the page.
    type: str
    default: vhost-blk fleet benchmark
seealso:
  - module: vhostblk.fleet.info
'''

EXAMPLES = r'''
- name: Render the report from the results fetched from every hypervisor
  vhostblk.fleet.benchmark_report:
    src: "{{ playbook_dir }}/bench-results"
    dest: "{{ playbook_dir }}/bench-report"
  delegate_to: localhost
  run_once: true
  register: report

- name: Every cell must have a value
  ansible.builtin.assert:
    that: report.missing | length == 0
    fail_msg: "missing in the benchmark results: {{ report.missing }}"
  run_once: true
'''

RETURN = r'''
files:
  description: The files written (or, in check mode, that would be), each with C(path), C(changed) and C(size).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/srv/report/report.html", "changed": true, "size": 183222}]
inputs:
  description: The result documents read.
  returned: always
  type: list
  elements: str
hosts:
  description: Host names of the documents, in input order.
  returned: always
  type: list
  elements: str
  sample: [kvm01, kvm02]
emulated:
  description: Whether any host reports being an emulated test hypervisor (its numbers measure emulation).
  returned: always
  type: bool
missing:
  description:
    - Every value the documents should hold and do not, each with C(host), C(path), C(workload) and
      C(field) (C(cell) when a whole path/workload result is absent; C(path) and C(workload) are null
      for a host fact). Paths a document lists as skipped are not expected.
  returned: always
  type: list
  elements: dict
  sample: [{"host": "kvm01", "path": "vhost-user", "workload": "4k-randread-qd1-j1", "field": "clat_us.p99.9"}]
summary:
  description:
    - The fleet summary, as written to C(summary.json); C(cells) holds per path and workload the
      C(hosts), C(min), C(median) and C(max) of C(iops), C(vs_virtio_blk), C(vs_host_native) and
      C(cpu.total) (CPU µs per I/O).
  returned: always
  type: dict
'''

import hashlib
import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_charts as charts
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_html as html
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_model as model
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_bench_report as report

TEXT_FILES = ('report.html', 'summary.json')


def input_files(sources):
    """The JSON files named by ``sources`` (directories: their *.json files), in order, each once."""
    found = []
    for source in sources:
        if os.path.isdir(source):
            names = sorted(name for name in os.listdir(source) if name.endswith('.json'))
            found += [os.path.join(source, name) for name in names]
        else:
            found.append(source)
    unique = []
    for path in found:
        if os.path.realpath(path) not in [os.path.realpath(one) for one in unique]:
            unique.append(path)
    return unique


def read_documents(paths):
    """The validated documents; raises BenchModelError naming the file of every problem."""
    docs, problems, hosts = [], [], {}
    for path in paths:
        try:
            with open(path, 'rb') as handle:
                doc = model.validate(json.loads(handle.read().decode('utf-8')))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reasons = exc.problems if isinstance(exc, model.BenchModelError) else [str(exc)]
            problems += [f'{path}: {reason}' for reason in reasons]
            continue
        name = doc['host']['hostname']
        if name in hosts:
            problems.append(f'{path}: host {name} already read from {hosts[name]}')
            continue
        hosts[name] = path
        docs.append(doc)
    if problems:
        raise model.BenchModelError(problems)
    if not docs:
        raise model.BenchModelError(['no result documents found'])
    return docs


def chart_name(kind, hostname):
    return f'{kind}-' + re.sub(r'[^A-Za-z0-9._-]', '_', hostname) + '.png'


def render(docs, with_charts, title):
    """{file name: bytes} of everything the report consists of."""
    summary = report.fleet_summary(docs)
    pictures = {}
    if with_charts:
        pictures = dict((doc['host']['hostname'], charts.host_charts(doc)) for doc in docs)
    files = {
        'report.html': html.render(docs, summary, pictures, title).encode('utf-8'),
        'summary.json': (json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + '\n').encode('utf-8'),
    }
    for hostname, kinds in pictures.items():
        for kind, png in kinds.items():
            name = chart_name(kind, hostname)
            if name in files:
                raise model.BenchModelError([f'two hosts share the chart file name {name}'])
            files[name] = png
    return files, summary


def _current(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError:
        return None


def _diff_text(name, data):
    if data is None:
        return ''
    if name in TEXT_FILES:
        return data.decode('utf-8', 'replace')
    return f'PNG, sha256 {hashlib.sha256(data).hexdigest()}\n'


def write(module, dest, name, data):
    handle, tmp = tempfile.mkstemp(prefix=f'.{name}.', dir=dest)
    with os.fdopen(handle, 'wb') as out:
        out.write(data)
    os.chmod(tmp, 0o644)
    module.atomic_move(tmp, os.path.join(dest, name))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='list', elements='path', required=True),
            dest=dict(type='path', required=True),
            charts=dict(type='bool', default=True),
            title=dict(type='str', default='vhost-blk fleet benchmark'),
        ),
        supports_check_mode=True,
    )
    dest = module.params['dest']
    paths = input_files(module.params['src'])
    try:
        docs = read_documents(paths)
        files, summary = render(docs, module.params['charts'], module.params['title'])
    except model.BenchModelError as exc:
        module.fail_json(msg='; '.join(exc.problems), problems=exc.problems, inputs=paths)
    except charts.MatplotlibMissing as exc:
        module.fail_json(msg=missing_required_lib('matplotlib', reason='the report charts (or set charts: false)'),
                         exception=str(exc))
    results, diffs = [], []
    for name in sorted(files):
        path = os.path.join(dest, name)
        before = _current(path)
        changed = before != files[name]
        results.append({'path': path, 'changed': changed, 'size': len(files[name])})
        if changed:
            diffs.append({'before_header': path, 'after_header': path,
                          'before': _diff_text(name, before), 'after': _diff_text(name, files[name])})
    changed = any(one['changed'] for one in results)
    if changed and not module.check_mode:
        if not os.path.isdir(dest):
            os.makedirs(dest)
        for one in results:
            if one['changed']:
                write(module, dest, os.path.basename(one['path']), files[os.path.basename(one['path'])])
    result = {'changed': changed, 'files': results, 'inputs': paths,
              'hosts': [doc['host']['hostname'] for doc in docs], 'emulated': summary['emulated'],
              'missing': summary['missing'], 'summary': summary}
    if module._diff:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
