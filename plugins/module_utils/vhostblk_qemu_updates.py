# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Is the patched QEMU (+vhostblkN) still the newest, and which VMs run a replaced QEMU binary?

``apt-cache policy`` lists a package's versions highest first with their priorities, so the
version order is apt's own (no version comparison here). The repository pins our origin at
Debian's priority (packaging/aptpin.py): a Debian version above our build becomes apt's
candidate, which is what ``newer_upstream`` reports.
"""


import os
import re

from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_host import guest_name

# packaging/aptpin.py LOCAL_VERSION_MARK (tests/lint checks they agree)
LOCAL_VERSION_MARK = '+vhostblk'
QEMU_PACKAGE = 'qemu-system-x86'
QEMU_BINARY_PREFIXES = ('qemu-system-', 'qemu-kvm')
DELETED = ' (deleted)'

_VERSION_LINE = re.compile(r'^ (\*\*\*| {3}) (\S+) (-?\d+)$')
_SOURCE_LINE = re.compile(r'^ {8}(-?\d+) (.+)$')


def parse_policy(text):
    """One package's ``apt-cache policy`` output (LC_ALL=C): installed and candidate version (None
    for '(none)') and the version table, highest version first, each with its priority, whether it
    is installed and its sources (priority, source)."""
    result = {'installed': None, 'candidate': None, 'versions': []}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith('Installed:') or stripped.startswith('Candidate:'):
            key, _sep, value = stripped.partition(':')
            value = value.strip()
            result[key.lower()] = None if value == '(none)' else value
            continue
        match = _VERSION_LINE.match(line)
        if match:
            result['versions'].append({'version': match.group(2), 'priority': int(match.group(3)),
                                       'installed': match.group(1) == '***', 'sources': []})
            continue
        match = _SOURCE_LINE.match(line)
        if match and result['versions']:
            result['versions'][-1]['sources'].append({'priority': int(match.group(1)), 'source': match.group(2)})
    return result


def is_patched(version):
    return version is not None and LOCAL_VERSION_MARK in version


def update_facts(policy):
    """What the policy says about our build and Debian's.

    patched_installed: the installed version is a +vhostblkN build; patched_available: the
    highest +vhostblkN version apt knows; debian_candidate: the version apt would choose if our
    builds did not exist (highest priority, then highest version, as apt does); newer_upstream:
    that version is above our build (the installed one when it is ours, else the newest
    available), null when apt knows no build of ours."""
    versions = policy['versions']
    order = dict((entry['version'], index) for index, entry in enumerate(versions))
    patched = [entry['version'] for entry in versions if is_patched(entry['version'])]
    others = [entry for entry in versions if not is_patched(entry['version'])]
    debian = None
    if others:
        top = max(entry['priority'] for entry in others)
        debian = next(entry['version'] for entry in others if entry['priority'] == top)
    installed = policy['installed']
    ours = installed if is_patched(installed) else (patched[0] if patched else None)
    newer = None
    if ours is not None:
        newer = debian is not None and order.get(debian, len(versions)) < order.get(ours, len(versions))
    return {'installed_version': installed, 'candidate_version': policy['candidate'],
            'patched_installed': is_patched(installed), 'patched_available': patched[0] if patched else None,
            'debian_candidate': debian, 'newer_upstream': newer}


def package_facts(run, package=QEMU_PACKAGE):
    """update_facts() of ``apt-cache policy PACKAGE``, with ``policy_error`` when apt could not tell."""
    rc, out, err = run(['apt-cache', 'policy', package])
    facts = update_facts(parse_policy(out if rc == 0 else ''))
    facts['policy_error'] = None
    if rc != 0:
        facts['policy_error'] = (err or out or f'rc={rc}').strip()
    elif not out.strip():
        facts['policy_error'] = f'apt knows no package {package}'
    return facts


def _is_qemu(path):
    return os.path.basename(path).startswith(QEMU_BINARY_PREFIXES)


def stale_processes(root='/'):
    """QEMU processes whose binary was replaced after they started (a package upgrade): the
    /proc/PID/exe link ends in ' (deleted)', or the path now names another file. Each with pid,
    exe (the path it was started from), guest (-name guest=X, else null) and reason ('deleted'
    or 'replaced'). Processes that cannot be read (another user's, when not root) are skipped."""
    proc = os.path.join(root, 'proc')
    found = []
    try:
        pids = sorted((name for name in os.listdir(proc) if name.isdigit()), key=int)
    except OSError:
        return found
    for pid in pids:
        link = os.path.join(proc, pid, 'exe')
        try:
            target = os.readlink(link)
        except OSError:
            continue  # gone, a kernel thread, or not ours to read
        path = target[:-len(DELETED)] if target.endswith(DELETED) else target
        if not _is_qemu(path):
            continue
        if target.endswith(DELETED):
            reason = 'deleted'
        else:
            try:
                running, on_disk = os.stat(link), os.stat(os.path.join(root, path.lstrip('/')))
            except OSError:
                continue
            if (running.st_dev, running.st_ino) == (on_disk.st_dev, on_disk.st_ino):
                continue
            reason = 'replaced'
        try:
            with open(os.path.join(proc, pid, 'cmdline'), 'rb') as handle:
                cmdline = [part.decode('utf-8', 'replace') for part in handle.read().split(b'\0') if part]
        except OSError:
            cmdline = []
        found.append({'pid': int(pid), 'exe': path, 'guest': guest_name(cmdline), 'reason': reason})
    return found
