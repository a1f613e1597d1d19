# SPDX-License-Identifier: GPL-2.0-or-later
"""A fake systemctl for the vhost-blk-user@ instances: keeps unit state in files, logs its calls.

write(path, state_dir) puts an executable script at ``path``; every call appends its
arguments (one line, space separated) to STATE/calls.log.  Units are enabled/active
when STATE/UNIT.enabled / STATE/UNIT.active exist.  STATE/fail names a verb that fails.
"""

import os

SCRIPT = r'''#!/usr/bin/python3
import os, sys
STATE = @STATE@
args = sys.argv[1:]
with open(os.path.join(STATE, 'calls.log'), 'a') as log:
    log.write(' '.join(args) + '\n')
verb = args[0]
now = '--now' in args
units = [a for a in args[1:] if not a.startswith('-')]
try:
    with open(os.path.join(STATE, 'fail')) as handle:
        if handle.read().strip() == verb:
            sys.stderr.write(f'Job for {units[0]} failed.\n')
            sys.exit(1)
except FileNotFoundError:
    pass


def mark(unit, what, on):
    path = os.path.join(STATE, f'{unit}.{what}')
    if on:
        open(path, 'w').close()
    elif os.path.exists(path):
        os.unlink(path)


def has(unit, what):
    return os.path.exists(os.path.join(STATE, f'{unit}.{what}'))


if verb == 'is-enabled':
    print('enabled' if has(units[0], 'enabled') else 'disabled')
    sys.exit(0 if has(units[0], 'enabled') else 1)
if verb == 'is-active':
    print('active' if has(units[0], 'active') else 'inactive')
    sys.exit(0 if has(units[0], 'active') else 3)
if verb == 'list-units':
    for name in sorted(os.listdir(STATE)):
        if name.endswith('.active'):
            print(name[:-len('.active')] + ' loaded active running fake')
    sys.exit(0)
for unit in units:
    if verb == 'enable':
        mark(unit, 'enabled', True)
        if now:
            mark(unit, 'active', True)
    elif verb == 'disable':
        mark(unit, 'enabled', False)
        if now:
            mark(unit, 'active', False)
    elif verb in ('start', 'restart'):
        mark(unit, 'active', True)
    elif verb == 'stop':
        mark(unit, 'active', False)
    else:
        sys.exit(f'fake systemctl: unknown verb {verb}')
'''


def write(path, state_dir):
    os.makedirs(state_dir, exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(SCRIPT.replace('@STATE@', repr(str(state_dir))))
    os.chmod(path, 0o755)
    return path


def calls(state_dir):
    try:
        with open(os.path.join(state_dir, 'calls.log')) as handle:
            return [line.rstrip('\n') for line in handle]
    except FileNotFoundError:
        return []


def mutating(state_dir):
    """Calls that change something (not is-enabled/is-active/list-units)."""
    return [call for call in calls(state_dir) if call.split()[0] not in ('is-enabled', 'is-active', 'list-units')]
