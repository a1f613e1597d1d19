# SPDX-License-Identifier: GPL-2.0-or-later


import os

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_host as host

DKMS3 = """vhost-blk/0.1.0, 6.1.0-26-amd64, x86_64: installed
vhost-blk/0.1.0, 6.12.12+bpo-amd64, x86_64: built
vhost-blk/0.2.0: added
"""
DKMS2 = "vhost-blk, 0.1.0, 6.1.0-26-amd64, x86_64: installed (WARNING! Diff between built and installed module!)\n"

DEVICE_HELP = '''Storage devices:
name "virtio-blk-pci", bus PCI, alias "virtio-blk"
name "vhost-blk-pci", bus PCI
name "vhost-user-blk-pci", bus PCI
'''
DEVICE_HELP_STOCK = DEVICE_HELP.replace('name "vhost-blk-pci", bus PCI\n', '')
PROPS_HELP = '''vhost-blk-pci options:
  drive=<str>
  num-queues=<uint16>    -  (default: 1)
  queue-size=<uint16>    -  (default: 128)
'''


def write(root, path, text=''):
    full = os.path.join(str(root), path.lstrip('/'))
    if not os.path.isdir(os.path.dirname(full)):
        os.makedirs(os.path.dirname(full))
    with open(full, 'w') as handle:
        handle.write(text)
    return full


class Runner:
    """Fake run(argv): answers by the argv tail, records calls."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        for tail, answer in self.answers.items():
            if tuple(argv[1:]) == tail or (tail and tuple(argv[-len(tail):]) == tail):
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return 1, '', f'unexpected {argv!r}'


# ---- kernel module ---------------------------------------------------------

def test_module_not_loaded(tmp_path):
    assert host.module_facts(str(tmp_path))['loaded'] is False


def test_module_loaded(tmp_path):
    base = '/sys/module/vhost_blk/'
    write(tmp_path, base + 'version', '0.1.0\n')
    write(tmp_path, base + 'srcversion', 'ABCDEF0123\n')
    write(tmp_path, base + 'refcnt', '3\n')
    write(tmp_path, base + 'initstate', 'live\n')
    write(tmp_path, base + 'parameters/max_workers', '4\n')
    os.makedirs(str(tmp_path / 'sys/module/vhost_blk/holders'))
    facts = host.module_facts(str(tmp_path))
    assert facts == {'loaded': True, 'version': '0.1.0', 'srcversion': 'ABCDEF0123', 'srcversion_on_disk': None,
                     'refcnt': 3, 'holders': [], 'initstate': 'live', 'parameters': {'max_workers': '4'}}


def test_module_srcversion_on_disk_from_modinfo(tmp_path):
    write(tmp_path, '/sys/module/vhost_blk/srcversion', 'ABCDEF0123\n')
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, '0123456789ABCDEF\n', ''
    facts = host.module_facts(str(tmp_path), run)
    assert calls == [['modinfo', '-F', 'srcversion', 'vhost_blk']]
    assert (facts['srcversion'], facts['srcversion_on_disk']) == ('ABCDEF0123', '0123456789ABCDEF')
    # no module file for the running kernel: none on disk, loaded or not

    def none(argv):
        return 1, '', 'modinfo: ERROR: Module vhost_blk not found.'
    assert host.module_facts(str(tmp_path / 'none'), none)['srcversion_on_disk'] is None


# ---- kernels and dkms -------------------------------------------------------

def test_installed_kernels_from_boot_sorted(tmp_path):
    for release in ('6.12.12+bpo-amd64', '6.1.0-26-amd64', '6.1.0-9-amd64'):
        write(tmp_path, '/boot/vmlinuz-' + release)
    write(tmp_path, '/boot/config-6.1.0-26-amd64')
    assert host.installed_kernels(str(tmp_path)) == ['6.1.0-9-amd64', '6.1.0-26-amd64', '6.12.12+bpo-amd64']


def test_installed_kernels_fall_back_to_lib_modules(tmp_path):
    os.makedirs(str(tmp_path / 'lib/modules/6.1.0-26-amd64/kernel'))
    os.makedirs(str(tmp_path / 'lib/modules/6.1.0-1-amd64/updates'))   # leftover, no kernel/
    assert host.installed_kernels(str(tmp_path)) == ['6.1.0-26-amd64']


def test_parse_dkms3():
    entries = host.parse_dkms_status(DKMS3)
    assert [(e['version'], e['kernel'], e['state']) for e in entries] == [
        ('0.1.0', '6.1.0-26-amd64', 'installed'), ('0.1.0', '6.12.12+bpo-amd64', 'built'),
        ('0.2.0', None, 'added')]


def test_parse_dkms2_with_warning():
    entry = host.parse_dkms_status(DKMS2)[0]
    assert (entry['name'], entry['kernel'], entry['state']) == ('vhost-blk', '6.1.0-26-amd64', 'installed')
    assert entry['warning'].startswith('WARNING! Diff')


def test_parse_dkms_ignores_noise():
    assert host.parse_dkms_status('Error! Could not locate dkms.conf\n\n') == []


def test_dkms_facts_per_kernel(tmp_path):
    os.makedirs(str(tmp_path / 'lib/modules/6.1.0-26-amd64/build'))
    run = Runner({('status', 'vhost-blk'): (0, DKMS3, '')})
    facts = host.dkms_facts(run, str(tmp_path), ['6.1.0-26-amd64', '6.12.12+bpo-amd64', '6.1.0-9-amd64'])
    assert facts['available'] is True and facts['error'] is None
    assert facts['kernels']['6.1.0-26-amd64'] == {'state': 'installed', 'version': '0.1.0',
                                                  'warning': None, 'headers': True}
    assert facts['kernels']['6.12.12+bpo-amd64']['state'] == 'built'
    assert facts['kernels']['6.12.12+bpo-amd64']['headers'] is False
    assert facts['kernels']['6.1.0-9-amd64']['state'] == 'missing'
    assert run.calls == [['dkms', 'status', 'vhost-blk']]


def test_dkms_missing(tmp_path):
    run = Runner({('status', 'vhost-blk'): (127, '', 'dkms: command not found')})
    facts = host.dkms_facts(run, str(tmp_path), ['6.1.0-26-amd64'])
    assert facts['available'] is False
    assert facts['kernels']['6.1.0-26-amd64']['state'] == 'missing'


# ---- device users -----------------------------------------------------------

def _proc(tmp_path, pid, comm, cmdline, fds):
    base = tmp_path / 'proc' / str(pid)
    os.makedirs(str(base / 'fd'))
    (base / 'comm').write_text(comm + '\n')
    (base / 'cmdline').write_text('\0'.join(cmdline) + '\0')
    for number, target in enumerate(fds):
        os.symlink(target, str(base / 'fd' / str(number)))


def test_device_users_from_proc(tmp_path):
    _proc(tmp_path, 4242, 'qemu-system-x86', ['/usr/bin/qemu-system-x86_64', '-name',
                                              'guest=vm1,debug-threads=on'],
          ['/dev/null', '/dev/vhost-blk', '/dev/vhost-blk', '/dev/kvm'])
    _proc(tmp_path, 77, 'sshd', ['sshd'], ['/dev/null'])
    _proc(tmp_path, 900, 'qemu-system-x86', ['qemu-system-x86_64', '-name', 'plain'], ['/dev/vhost-blk'])
    (tmp_path / 'proc' / 'self').mkdir()
    assert host.device_users(str(tmp_path)) == ([
        {'pid': 900, 'comm': 'qemu-system-x86', 'fds': 1, 'guest': 'plain'},
        {'pid': 4242, 'comm': 'qemu-system-x86', 'fds': 2, 'guest': 'vm1'},
    ], [])


def _unreadable_fds(monkeypatch, *pids):
    real = os.listdir

    def listdir(path):
        if any(path.endswith(f'/proc/{pid}/fd') for pid in pids):
            raise PermissionError(13, 'Permission denied', path)
        return real(path)
    monkeypatch.setattr(host.os, 'listdir', listdir)


def test_unreadable_fd_tables_make_use_unknown_not_free(tmp_path, monkeypatch):
    """Without root another user's QEMU cannot be inspected: that is not "no users"."""
    _proc(tmp_path, 4242, 'qemu-system-x86', ['qemu-system-x86_64', '-name', 'guest=vm1'], ['/dev/vhost-blk'])
    _proc(tmp_path, 77, 'sshd', ['sshd'], ['/dev/null'])
    _unreadable_fds(monkeypatch, 4242)
    assert host.device_users(str(tmp_path)) == ([], [4242])
    facts = host.device_facts(str(tmp_path))
    assert facts['in_use'] is None and facts['users_unreadable'] == [4242]


def test_a_seen_user_is_in_use_even_with_unreadable_others(tmp_path, monkeypatch):
    _proc(tmp_path, 900, 'qemu-system-x86', ['qemu-system-x86_64', '-name', 'plain'], ['/dev/vhost-blk'])
    _proc(tmp_path, 77, 'sshd', ['sshd'], ['/dev/null'])
    _unreadable_fds(monkeypatch, 77)
    facts = host.device_facts(str(tmp_path))
    assert facts['in_use'] is True and [u['pid'] for u in facts['users']] == [900]


def test_a_vanished_process_is_not_unreadable(tmp_path):
    (tmp_path / 'proc' / '31337').mkdir(parents=True)   # no fd directory: exited meanwhile
    assert host.device_users(str(tmp_path)) == ([], [])
    assert host.device_facts(str(tmp_path))['in_use'] is False


def test_device_facts_missing_node(tmp_path):
    facts = host.device_facts(str(tmp_path))
    assert facts['exists'] is False and facts['users'] == [] and facts['in_use'] is False


def test_device_facts_regular_file_stands_in(tmp_path):
    write(tmp_path, '/dev/vhost-blk')
    facts = host.device_facts(str(tmp_path))
    assert facts['exists'] is True and facts['major'] is None
    assert host.is_char_device(str(tmp_path / 'dev/vhost-blk')) is False


def test_is_char_device_real_node():
    assert host.is_char_device('/dev/null') is True
    assert host.is_char_device('/nonexistent/vhost-blk') is False


# ---- QEMU -------------------------------------------------------------------

def _qemu(tmp_path):
    path = write(tmp_path, '/usr/bin/qemu-system-x86_64', '#!/bin/sh\n')
    os.chmod(path, 0o755)


def test_qemu_patched(tmp_path):
    _qemu(tmp_path)
    run = Runner({('-version',): (0, 'QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u18)\n', ''),
                  ('-device', 'help'): (0, DEVICE_HELP, ''),
                  ('-device', 'vhost-blk-pci,help'): (0, PROPS_HELP, '')})
    facts = host.qemu_facts(run, root=str(tmp_path))
    assert facts['binary'] == '/usr/bin/qemu-system-x86_64'
    assert facts['version'] == '7.2.15'
    assert facts['vhost_blk_pci'] is True
    assert facts['properties'] == ['drive', 'num-queues', 'queue-size']


def test_qemu_stock_does_not_match_vhost_user_blk(tmp_path):
    _qemu(tmp_path)
    run = Runner({('-version',): (0, 'QEMU emulator version 7.2.15\n', ''),
                  ('-device', 'help'): (0, DEVICE_HELP_STOCK, '')})
    facts = host.qemu_facts(run, root=str(tmp_path))
    assert facts['present'] is True and facts['vhost_blk_pci'] is False


def test_qemu_missing_binary_is_tolerated(tmp_path):
    run = Runner({})
    facts = host.qemu_facts(run, binary='qemu-system-x86_64', root=str(tmp_path))
    assert facts['present'] is False and facts['error'] == 'qemu-system-x86_64 not found'
    assert run.calls == []


def test_qemu_failing_binary(tmp_path):
    _qemu(tmp_path)
    run = Runner({('-version',): (0, '', ''), ('-device', 'help'): (1, '', 'cannot load libfoo.so')})
    facts = host.qemu_facts(run, root=str(tmp_path))
    assert facts['vhost_blk_pci'] is False and facts['error'] == 'cannot load libfoo.so'


# ---- qemu.conf --------------------------------------------------------------

QEMU_CONF = '''# user = "root"
user = "+64055"
group = "kvm"
cgroup_device_acl = [
    "/dev/null", "/dev/full", "/dev/zero",
    "/dev/random", "/dev/urandom",
    "/dev/ptmx", "/dev/kvm",
    "/dev/vhost-blk"
]
'''


def test_parse_qemu_conf():
    conf = host.parse_qemu_conf(QEMU_CONF)
    assert conf['user'] == '+64055' and conf['group'] == 'kvm'
    assert conf['cgroup_device_acl'][-1] == '/dev/vhost-blk'


def test_qemu_conf_facts(tmp_path):
    assert host.qemu_conf_facts(str(tmp_path))['present'] is False
    write(tmp_path, host.QEMU_CONF, QEMU_CONF)
    assert host.qemu_conf_facts(str(tmp_path))['device_allowed'] is True
    write(tmp_path, host.QEMU_CONF, '#cgroup_device_acl = [ "/dev/vhost-blk" ]\n')
    assert host.qemu_conf_facts(str(tmp_path))['device_allowed'] is False


def _lookup(names):
    def lookup(name):
        if name not in names:
            raise KeyError(name)
        return name
    return lookup


@pytest.mark.parametrize('conf, users, expected', [
    (QEMU_CONF, (), ('64055', 'kvm')),
    ('', ('libvirt-qemu',), ('libvirt-qemu', 'libvirt-qemu')),
    ('', ('qemu',), ('qemu', 'qemu')),
    ('group = "kvm"\n', ('qemu',), ('qemu', 'kvm')),
    ('', (), (None, None)),
])
def test_qemu_identity(tmp_path, conf, users, expected):
    write(tmp_path, host.QEMU_CONF, conf)
    assert host.qemu_identity(str(tmp_path), getpwnam=_lookup(users)) == expected
