# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Host facts about vhost-blk: kernel module, dkms, device users, QEMU.

Every function takes the file system root (``root``, '/' on a real host) and,
where a command is run, a ``run(argv) -> (rc, stdout, stderr)`` callable, so
unit tests can point them at a fake tree and fake commands.
"""


import grp
import os
import pwd
import re
import stat

MODULE_NAME = 'vhost_blk'
DKMS_NAME = 'vhost-blk'
DEVICE_PATH = '/dev/vhost-blk'
QEMU_DEVICE = 'vhost-blk-pci'
QEMU_CONF = '/etc/libvirt/qemu.conf'
# Tried in order when no qemu.conf user/group is set: Debian, then Fedora/RHEL.
QEMU_IDENTITIES = (('libvirt-qemu', 'libvirt-qemu'), ('qemu', 'qemu'))


def _p(root, path):
    """``path`` (absolute) below ``root``."""
    return os.path.join(root, path.lstrip('/'))


def _read(path, default=None):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return default


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# --------------------------------------------------------------------------
# kernel module
# --------------------------------------------------------------------------

def module_facts(root='/', run=None):
    """State of the vhost_blk kernel module from /sys/module; with ``run``, also the srcversion of
    the module file modprobe would load now (``srcversion_on_disk``, None when there is none), so a
    caller can tell that the loaded module is not the installed one."""
    on_disk = None
    if run is not None:
        rc, out, _err = run(['modinfo', '-F', 'srcversion', MODULE_NAME])
        on_disk = out.strip() or None if rc == 0 else None
    base = _p(root, '/sys/module/' + MODULE_NAME)
    if not os.path.isdir(base):
        return {'loaded': False, 'version': None, 'srcversion': None, 'srcversion_on_disk': on_disk,
                'refcnt': None, 'holders': [], 'initstate': None, 'parameters': {}}
    refcnt = _read(os.path.join(base, 'refcnt'))
    params = {}
    for name in _listdir(os.path.join(base, 'parameters')):
        params[name] = _read(os.path.join(base, 'parameters', name))
    return {
        'loaded': _read(os.path.join(base, 'initstate'), 'live') == 'live',
        'version': _read(os.path.join(base, 'version')),
        'srcversion': _read(os.path.join(base, 'srcversion')),
        'srcversion_on_disk': on_disk,
        'refcnt': int(refcnt) if refcnt and refcnt.isdigit() else None,
        'holders': _listdir(os.path.join(base, 'holders')),
        'initstate': _read(os.path.join(base, 'initstate')),
        'parameters': params,
    }


# --------------------------------------------------------------------------
# installed kernels and dkms
# --------------------------------------------------------------------------

def installed_kernels(root='/'):
    """Kernel releases installed: /boot/vmlinuz-* first, else /lib/modules/*."""
    kernels = [name[len('vmlinuz-'):] for name in _listdir(_p(root, '/boot'))
               if name.startswith('vmlinuz-')]
    if not kernels:
        modules = _p(root, '/lib/modules')
        kernels = [name for name in _listdir(modules)
                   if os.path.isdir(os.path.join(modules, name, 'kernel'))]
    return sorted(set(kernels), key=_kernel_sort_key)


def _kernel_sort_key(release):
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', release)]


_DKMS3_RE = re.compile(r'^(?P<name>[^/,\s]+)/(?P<version>[^,\s]+)'
                       r'(?:,\s*(?P<kernel>[^,\s]+),\s*(?P<arch>[^:\s]+))?:\s*(?P<state>.+)$')
_DKMS2_RE = re.compile(r'^(?P<name>[^/,\s]+),\s*(?P<version>[^,\s]+)'
                       r'(?:,\s*(?P<kernel>[^,\s]+),\s*(?P<arch>[^:\s]+))?:\s*(?P<state>.+)$')


def parse_dkms_status(text):
    """Parse ``dkms status`` lines (dkms 2 and 3 formats) into dicts.

    Each: name, version, kernel (None for 'added'), arch, state ('added',
    'built', 'installed', ...), warning (text in parentheses, or None).
    """
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        match = _DKMS3_RE.match(line) or _DKMS2_RE.match(line)
        if not match:
            continue
        state = match.group('state').strip()
        warning = None
        paren = re.match(r'^(\S+)\s*\((.*)\)\s*$', state)
        if paren:
            state, warning = paren.group(1), paren.group(2)
        entries.append({
            'name': match.group('name'), 'version': match.group('version'),
            'kernel': match.group('kernel'), 'arch': match.group('arch'),
            'state': state.rstrip(','), 'warning': warning,
        })
    return entries


def dkms_facts(run, root='/', kernels=None):
    """dkms state of vhost-blk for every installed kernel.

    Returns {'available': bool, 'entries': [...], 'kernels': {release: {...}}}
    where each kernel says its dkms state ('missing' when dkms has nothing for
    it) and whether its headers are installed (/lib/modules/R/build).
    """
    if kernels is None:
        kernels = installed_kernels(root)
    try:
        rc, out, err = run(['dkms', 'status', DKMS_NAME])
    except OSError as exc:
        rc, out, err = 127, '', str(exc)
    available = rc != 127 and 'command not found' not in (err or '')
    entries = parse_dkms_status(out) if rc == 0 else []
    entries = [e for e in entries if e['name'] == DKMS_NAME]
    per_kernel = {}
    for release in kernels:
        found = [e for e in entries if e['kernel'] == release]
        best = found[0] if found else None
        per_kernel[release] = {
            'state': best['state'] if best else 'missing',
            'version': best['version'] if best else None,
            'warning': best['warning'] if best else None,
            'headers': os.path.exists(_p(root, f'/lib/modules/{release}/build')),
        }
    return {'available': available, 'entries': entries, 'kernels': per_kernel,
            'error': None if rc == 0 else (err or out or f'rc={rc}').strip()}


# --------------------------------------------------------------------------
# /dev/vhost-blk and its users
# --------------------------------------------------------------------------

def device_facts(root='/'):
    """The device node and the processes that hold it open (from /proc/*/fd)."""
    node = _p(root, DEVICE_PATH)
    facts = {'path': DEVICE_PATH, 'exists': False, 'major': None, 'minor': None,
             'mode': None, 'owner': None, 'group': None, 'users': [], 'users_unreadable': [],
             'in_use': False}
    try:
        st = os.stat(node)
    except OSError:
        st = None
    if st is not None:
        facts['exists'] = True
        if stat.S_ISCHR(st.st_mode):
            facts['major'], facts['minor'] = os.major(st.st_rdev), os.minor(st.st_rdev)
        facts['mode'] = f'{stat.S_IMODE(st.st_mode):04o}'
        facts['owner'] = _user_name(st.st_uid)
        facts['group'] = _group_name(st.st_gid)
    facts['users'], facts['users_unreadable'] = device_users(root)
    # None: unknown (some fd tables were unreadable and nobody was seen): callers treat it as busy
    facts['in_use'] = True if facts['users'] else (None if facts['users_unreadable'] else False)
    return facts


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def guest_name(cmdline):
    """Domain name out of a QEMU command line (-name guest=NAME,... or -name NAME)."""
    for index, arg in enumerate(cmdline[:-1]):
        if arg == '-name':
            value = cmdline[index + 1]
            for field in value.split(','):
                if field.startswith('guest='):
                    return field[len('guest='):]
            return value.split(',')[0]
    return None


def device_users(root='/', device=DEVICE_PATH):
    """Processes with ``device`` open (pid, comm, number of fds, guest name), and the PIDs whose
    fd table could not be read (another user's processes, when not run as root): with any of
    those the list may be incomplete."""
    proc = _p(root, '/proc')
    users, unreadable = [], []
    for pid in _listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = os.path.join(proc, pid, 'fd')
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            unreadable.append(int(pid))
            continue
        except OSError:
            continue  # the process is gone
        count = 0
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target == device:
                count += 1
        if not count:
            continue
        raw = _read(os.path.join(proc, pid, 'cmdline'), '') or ''
        cmdline = [part for part in raw.split('\0') if part]
        users.append({'pid': int(pid), 'comm': _read(os.path.join(proc, pid, 'comm')),
                      'fds': count, 'guest': guest_name(cmdline)})
    return sorted(users, key=lambda user: user['pid']), sorted(unreadable)


# --------------------------------------------------------------------------
# QEMU
# --------------------------------------------------------------------------

def find_binary(name, root='/', path_env=None):
    """Absolute path of ``name`` (or ``name`` itself if it is a path), or None."""
    if '/' in name:
        return name if os.access(_p(root, name), os.X_OK) else None
    dirs = (path_env or os.environ.get('PATH', '')).split(os.pathsep)
    for extra in ('/usr/bin', '/usr/local/bin', '/usr/libexec', '/usr/sbin'):
        if extra not in dirs:
            dirs.append(extra)
    for directory in dirs:
        if directory and os.access(_p(root, os.path.join(directory, name)), os.X_OK):
            return os.path.join(directory, name)
    return None


def _help_names(text):
    """Names out of QEMU help text: `name "vhost-blk-pci", ...` or `  prop=<type>`."""
    names = re.findall(r'name "([^"]+)"', text)
    return names


def qemu_facts(run, binary='qemu-system-x86_64', root='/'):
    """Is a QEMU with the vhost-blk-pci device installed?"""
    facts = {'binary': None, 'present': False, 'vhost_blk_pci': False, 'version': None,
             'properties': [], 'error': None}
    path = find_binary(binary, root)
    if path is None:
        facts['error'] = f'{binary} not found'
        return facts
    facts['binary'] = path
    facts['present'] = True
    try:
        rc, out, err = run([path, '-version'])
        if rc == 0:
            match = re.search(r'version (\S+)', out)
            facts['version'] = match.group(1) if match else None
        rc, out, err = run([path, '-machine', 'none', '-device', 'help'])
    except OSError as exc:
        facts['error'] = str(exc)
        return facts
    if rc != 0:
        facts['error'] = (err or out or f'rc={rc}').strip()
        return facts
    facts['vhost_blk_pci'] = QEMU_DEVICE in _help_names(out)
    if facts['vhost_blk_pci']:
        rc, out, err = run([path, '-machine', 'none', '-device', QEMU_DEVICE + ',help'])
        if rc == 0:
            facts['properties'] = sorted(set(re.findall(r'^\s+([A-Za-z0-9_.-]+)=', out, re.M)))
    return facts


# --------------------------------------------------------------------------
# libvirt's QEMU identity and device ACL
# --------------------------------------------------------------------------

def _conf_value(text, key):
    match = re.search(rf'^\s*{re.escape(key)}\s*=\s*"([^"]*)"', text, re.M)
    return match.group(1) if match else None


def parse_qemu_conf(text):
    """user, group and cgroup_device_acl out of libvirt's qemu.conf text."""
    acl = None
    match = re.search(r'^\s*cgroup_device_acl\s*=\s*\[(.*?)\]', text, re.M | re.S)
    if match:
        acl = re.findall(r'"([^"]+)"', match.group(1))
    return {'user': _conf_value(text, 'user'), 'group': _conf_value(text, 'group'),
            'cgroup_device_acl': acl}


def _exists(lookup, name):
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def qemu_identity(root='/', getpwnam=pwd.getpwnam):
    """The (user, group) libvirt runs QEMU as: qemu.conf, else the distro default.

    Returns (None, None) when nothing fits.
    """
    conf = parse_qemu_conf(_read(_p(root, QEMU_CONF), '') or '')
    user, group = conf['user'], conf['group']
    if user and group:
        return user.lstrip('+'), group.lstrip('+')
    for cand_user, cand_group in QEMU_IDENTITIES:
        if _exists(getpwnam, cand_user):
            return (user or cand_user).lstrip('+'), (group or cand_group).lstrip('+')
    return None, None


def qemu_conf_facts(root='/'):
    """Whether libvirt's device cgroup lets QEMU open /dev/vhost-blk."""
    text = _read(_p(root, QEMU_CONF))
    if text is None:
        return {'present': False, 'user': None, 'group': None, 'cgroup_device_acl': None,
                'device_allowed': None}
    conf = parse_qemu_conf(text)
    conf['present'] = True
    # None: libvirt's built-in default list applies, which lacks /dev/vhost-blk.
    conf['device_allowed'] = bool(conf['cgroup_device_acl']) and \
        DEVICE_PATH in conf['cgroup_device_acl']
    return conf


def is_char_device(path):
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False
