# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The vhost-blk-user back-end instances (systemd template vhost-blk-user@.service).

One instance per disk: instance NAME reads /etc/vhost-blk/user/NAME.conf
(``BACKING=`` and ``OPTIONS=``, systemd EnvironmentFile syntax) and listens on
/run/vhost-blk/NAME.sock.  This file writes the configuration and drives
systemctl; it knows nothing of libvirt.

The file system root and the systemctl command are injectable (``root``,
``systemctl``, ``run(argv) -> (rc, stdout, stderr)``), so unit tests run it
against a temporary tree and a fake systemctl.
"""


import hashlib
import os
import re
import tempfile

from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import VhostBlkError

DEFAULT_ROOT = '/'
DEFAULT_SYSTEMCTL = 'systemctl'
CONF_DIR = '/etc/vhost-blk/user'
SOCKET_DIR = '/run/vhost-blk'
UNIT_PREFIX = 'vhost-blk-user@'
UNIT_TEMPLATE = UNIT_PREFIX + '.service'
UNIT_DIRS = ('/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system')
SERVICE_USER = 'vhost-blk'
SERVICE_GROUP = 'vhost-blk'
# sun_path holds 108 bytes with the NUL: /run/vhost-blk/ + NAME + .sock must fit.
MAX_INSTANCE = 107 - len(SOCKET_DIR) - 1 - len('.sock')
# Instance names that need no systemd escaping and are safe as file names.
INSTANCE_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]*$')
_SAFE_VALUE_RE = re.compile(r'^[A-Za-z0-9_./+:@%,=-]+$')
MARKER = '# managed by vhostblk.fleet.disk:'
CACHE_MODES = ('none', 'writeback')


def instance_name(domain, disk_id):
    """Instance name of disk ``disk_id`` of ``domain``: DOMAIN-ID when that is safe.

    A domain name with characters outside [A-Za-z0-9_.-], or one that would make the
    socket path too long, is cut down and tagged with a hash of the full name.
    """
    name = f'{domain}-{disk_id}'
    if INSTANCE_RE.match(name) and len(name) <= MAX_INSTANCE:
        return name
    digest = hashlib.sha256(domain.encode('utf-8')).hexdigest()[:8]
    safe = re.sub(r'[^A-Za-z0-9_.-]', '_', domain).lstrip('.-')[:24]
    name = f'{safe}-{digest}-{disk_id}' if safe else f'{digest}-{disk_id}'
    return name[:MAX_INSTANCE]


def validate_instance(name):
    if not INSTANCE_RE.match(name or '') or len(name) > MAX_INSTANCE:
        raise VhostBlkError(
            f'Invalid instance name {name!r}: at most {MAX_INSTANCE} characters, letters, digits, '
            "'_', '.' and '-', not starting with '.' or '-' (it names a systemd unit and a socket)")


def unit_name(instance):
    return f'{UNIT_PREFIX}{instance}.service'


def socket_path(instance):
    """The socket libvirt connects to (a host path, not below a test root)."""
    return f'{SOCKET_DIR}/{instance}.sock'


def _quote(value):
    """A value in systemd EnvironmentFile syntax."""
    if _SAFE_VALUE_RE.match(value):
        return value
    escaped = value.replace('\\', '\\\\').replace('"', '\\"')
    return f'"{escaped}"'


def options_of(serial=None, queues=None, readonly=False, cache=None):
    """The daemon options of a disk, in a fixed order."""
    options = []
    if serial is not None:
        options += ['--serial', serial]
    if queues is not None:
        options += ['--queues', str(queues)]
    if readonly:
        options.append('--readonly')
    if cache is not None:
        options += ['--cache', cache]
    return options


def render_conf(domain, disk_id, path, options=()):
    """Text of NAME.conf.  ``options`` words must not contain white space or quotes
    (systemd splits $OPTIONS at white space)."""
    for word in options:
        if not word or re.search(r'[\s"\'\\$`]', word):
            raise VhostBlkError(f'Daemon option {word!r} must not hold white space, quotes, '
                                "'\\', '$' or '`'")
    lines = [f'{MARKER} domain={_quote(domain)} id={disk_id}', f'BACKING={_quote(path)}']
    if options:
        lines.append(f'OPTIONS="{" ".join(options)}"')
    return '\n'.join(lines) + '\n'


def conf_owner(text):
    """(domain, id) out of the marker line of a conf file, or None (not ours)."""
    first = (text or '').splitlines()[:1]
    if not first or not first[0].startswith(MARKER):
        return None
    match = re.match(r'^ domain=("(?:[^"\\]|\\.)*"|\S+) id=(\S+)$', first[0][len(MARKER):])
    if not match:
        return None
    domain = match.group(1)
    if domain.startswith('"'):
        domain = re.sub(r'\\(.)', r'\1', domain[1:-1])
    return domain, match.group(2)


def conf_values(text):
    """BACKING and OPTIONS (unquoted) out of a conf file."""
    values = {}
    for line in (text or '').splitlines():
        match = re.match(r'^\s*([A-Z_]+)=(.*)$', line)
        if not match:
            continue
        value = match.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r'\\(.)', r'\1', value[1:-1])
        values[match.group(1)] = value
    return values


def conf_with_option(text, word):
    """Conf text ``text`` with daemon option ``word`` added to OPTIONS (once; the rest unchanged).

    The drain hook gives the destination of a live migration its source's configuration with
    ``--shared`` this way."""
    if not word.startswith('--') or re.search(r'[\s"\'\\$`]', word):
        raise VhostBlkError(f'Daemon option {word!r} must start with -- and hold no white space, quotes, '
                            "'\\', '$' or '`'")
    if conf_owner(text) is None:
        raise VhostBlkError('not a back-end configuration of vhostblk.fleet.disk (no marker line): '
                            f'{(text or "").splitlines()[:1]}')
    options = conf_values(text).get('OPTIONS', '').split()
    if word in options:
        return text
    lines = [line for line in text.splitlines() if not re.match(r'^\s*OPTIONS=', line)]
    lines.append(f'OPTIONS="{" ".join(options + [word])}"')
    return '\n'.join(lines) + '\n'


class BackendService:
    """vhost-blk-user@ instances on one host.

    run(argv) -> (rc, stdout, stderr); root: file system root for the conf and unit
    files; systemctl: the systemctl command.
    """

    def __init__(self, run, root=DEFAULT_ROOT, systemctl=DEFAULT_SYSTEMCTL):
        self.run = run
        self.root = root
        self.systemctl = systemctl

    def _p(self, path):
        return os.path.join(self.root, path.lstrip('/'))

    def conf_path(self, instance):
        return self._p(f'{CONF_DIR}/{instance}.conf')

    def template_installed(self):
        return any(os.path.exists(self._p(f'{directory}/{UNIT_TEMPLATE}')) for directory in UNIT_DIRS)

    def read_conf(self, instance):
        try:
            with open(self.conf_path(instance)) as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VhostBlkError(f'Cannot read {self.conf_path(instance)}: {exc}') from exc

    def _systemctl(self, *args):
        argv = [self.systemctl] + list(args)
        try:
            return self.run(argv)
        except OSError as exc:
            return 127, '', str(exc)

    def unit_state(self, instance):
        """(enabled, active) of the instance unit."""
        unit = unit_name(instance)
        rc, out, dummy = self._systemctl('is-enabled', unit)
        enabled = rc == 0 and out.strip() in ('enabled', 'enabled-runtime')
        rc, out, dummy = self._systemctl('is-active', unit)
        active = rc == 0 and out.strip() == 'active'
        return enabled, active

    def state(self, instance):
        conf = self.read_conf(instance)
        if conf is None and not self.template_installed():
            return {'conf': None, 'enabled': False, 'active': False}
        enabled, active = self.unit_state(instance)
        return {'conf': conf, 'enabled': enabled, 'active': active}

    def check_owner(self, instance, domain, disk_id, conf=None):
        """Raise if the conf file of ``instance`` belongs to another disk (or to no module run)."""
        if conf is None:
            conf = self.read_conf(instance)
        if conf is None:
            return
        owner = conf_owner(conf)
        if owner != (domain, disk_id):
            whose = f'disk {owner[1]} of domain {owner[0]}' if owner else 'someone else (no marker line)'
            raise VhostBlkError(f'{self.conf_path(instance)} belongs to {whose}: choose another instance name')

    # ---- planning --------------------------------------------------------

    @staticmethod
    def plan_present(state, conf_text):
        """Actions that make the instance run with ``conf_text``."""
        actions = []
        if state['conf'] != conf_text:
            actions.append('write')
        if not state['enabled']:
            actions.append('enable')
        if not state['active']:
            actions.append('start')
        elif 'write' in actions:
            actions.append('restart')
        return actions

    @staticmethod
    def plan_absent(state, keep_running=False):
        actions = []
        if state['active'] and not keep_running:
            actions.append('stop')
        if state['enabled'] and not keep_running:
            actions.append('disable')
        if state['conf'] is not None and not keep_running:
            actions.append('remove')
        return actions

    # ---- doing -----------------------------------------------------------

    def _check(self, instance, *args):
        rc, out, err = self._systemctl(*args)
        if rc != 0:
            raise VhostBlkError(f"systemctl {' '.join(args)} failed (rc={rc}): {(err or out).strip()}; see "
                                f'journalctl -u {unit_name(instance)}')

    def write_conf(self, instance, conf_text):
        path = self.conf_path(instance)
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f'.{instance}.', dir=directory)
            try:
                with os.fdopen(fd, 'w') as handle:
                    handle.write(conf_text)
                os.chmod(tmp, 0o644)
                os.rename(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise VhostBlkError(f'Cannot write {path}: {exc}') from exc

    def apply(self, instance, actions, conf_text=None):
        """Carry out planned actions, in a safe order."""
        unit = unit_name(instance)
        if 'write' in actions:
            self.write_conf(instance, conf_text)
        if 'enable' in actions and 'start' in actions:
            self._check(instance, 'enable', '--now', unit)
        else:
            if 'enable' in actions:
                self._check(instance, 'enable', unit)
            if 'start' in actions:
                self._check(instance, 'start', unit)
        if 'restart' in actions:
            self._check(instance, 'restart', unit)
        if 'stop' in actions and 'disable' in actions:
            self._check(instance, 'disable', '--now', unit)
        else:
            if 'stop' in actions:
                self._check(instance, 'stop', unit)
            if 'disable' in actions:
                self._check(instance, 'disable', unit)
        if 'remove' in actions:
            try:
                os.unlink(self.conf_path(instance))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise VhostBlkError(f'Cannot remove {self.conf_path(instance)}: {exc}') from exc

    # ---- facts -----------------------------------------------------------

    def instances(self):
        """Configured instances (conf files) and running/enabled units, each a dict."""
        names = set()
        try:
            names.update(name[:-len('.conf')] for name in os.listdir(self._p(CONF_DIR))
                         if name.endswith('.conf') and not name.startswith('.'))
        except OSError:
            pass
        rc, out, dummy = self._systemctl('list-units', '--all', '--plain', '--no-legend', '--no-pager',
                                         UNIT_PREFIX + '*.service')
        if rc == 0:
            for line in out.splitlines():
                unit = line.split()[0] if line.split() else ''
                if unit.startswith(UNIT_PREFIX) and unit.endswith('.service'):
                    names.add(unit[len(UNIT_PREFIX):-len('.service')])
        result = []
        for name in sorted(names):
            conf = self.read_conf(name)
            values = conf_values(conf)
            owner = conf_owner(conf)
            enabled, active = self.unit_state(name)
            result.append({
                'instance': name, 'unit': unit_name(name), 'socket': socket_path(name),
                'socket_exists': os.path.exists(self._p(socket_path(name))),
                'conf': self.conf_path(name) if conf is not None else None,
                'backing': values.get('BACKING'), 'options': values.get('OPTIONS', '').split(),
                'domain': owner[0] if owner else None, 'id': owner[1] if owner else None,
                'enabled': enabled, 'active': active,
            })
        return result
