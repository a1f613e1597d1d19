# SPDX-License-Identifier: GPL-2.0-or-later


import os
import sys

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_backend_service as svc
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_vhostuser as vu
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import parse_xml, to_xml
from ansible_collections.vhostblk.fleet.plugins.modules import info
from ansible_collections.vhostblk.fleet.tests.unit.plugins import fake_libvirt
from ansible_collections.vhostblk.fleet.tests.unit.plugins.module_harness import fixture, run

DKMS = 'vhost-blk/0.1.0, 6.1.0-26-amd64, x86_64: installed\n'
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures')
HELP = 'name "virtio-blk-pci", bus PCI\nname "vhost-blk-pci", bus PCI\n'


class FakeModule:
    """The few AnsibleModule members gather() uses."""

    def __init__(self, params, commands, bins=('dkms',)):
        self.params = params
        self.commands = commands
        self.bins = bins
        self.calls = []
        self.options = []

    def get_bin_path(self, name, opt_dirs=None):  # pylint: disable=unused-argument
        return '/usr/sbin/' + name if name in self.bins else None

    def run_command(self, argv, **options):
        self.calls.append(argv)
        self.options.append(options)
        return self.commands.get(tuple(argv[1:]), (1, '', 'unknown command'))


def params(**kwargs):
    base = {'domains': True, 'uri': 'qemu:///system', 'qemu_binary': 'qemu-system-x86_64'}
    base.update(kwargs)
    return base


@pytest.fixture
def host_root(tmp_path):
    (tmp_path / 'boot').mkdir()
    (tmp_path / 'boot' / 'vmlinuz-6.1.0-26-amd64').write_text('')
    (tmp_path / 'boot' / 'vmlinuz-6.12.12+bpo-amd64').write_text('')
    module_dir = tmp_path / 'sys' / 'module' / 'vhost_blk'
    module_dir.mkdir(parents=True)
    (module_dir / 'version').write_text('0.1.0\n')
    (module_dir / 'refcnt').write_text('0\n')
    (module_dir / 'initstate').write_text('live\n')
    return tmp_path


@pytest.fixture
def libvirt_conn(tmp_path, monkeypatch):
    conn = fake_libvirt.FakeConn()
    conn.add(fixture('vm1-q35.xml', tmp_path))
    conn.add(fixture('vm3-vhostblk.xml', tmp_path), active=True,
             live_xml=fixture('vm3-vhostblk.xml', tmp_path).replace('num-queues=2', 'num-queues=1'))
    monkeypatch.setitem(sys.modules, 'libvirt', fake_libvirt.make_module(conn))
    return conn


def test_gather_everything(host_root, libvirt_conn):
    module = FakeModule(params(), {('status', 'vhost-blk'): (0, DKMS, '')})
    result = info.gather(module, str(host_root))
    assert result['changed'] is False
    assert result['module']['loaded'] is True and result['module']['version'] == '0.1.0'
    assert result['kernels'] == ['6.1.0-26-amd64', '6.12.12+bpo-amd64']
    assert result['dkms']['kernels']['6.1.0-26-amd64']['state'] == 'installed'
    assert result['dkms']['kernels']['6.12.12+bpo-amd64']['state'] == 'missing'
    assert result['device']['exists'] is False
    assert result['qemu']['present'] is False
    assert result['notes'] == ['QEMU binary qemu-system-x86_64 not found']
    assert [d['name'] for d in result['domains']] == ['vm3']        # vm1 has no vhost-blk disk
    vm3 = result['domains'][0]
    assert vm3['active'] is True and vm3['restart_required'] is True
    assert vm3['disks'][0]['queues'] == 2 and vm3['live_disks'][0]['queues'] == 1
    assert module.calls[0] == ['/usr/sbin/dkms', 'status', 'vhost-blk']


def test_gather_without_libvirt(host_root, monkeypatch):
    monkeypatch.setitem(sys.modules, 'libvirt', None)
    result = info.gather(FakeModule(params(), {}, bins=()), str(host_root))
    assert result['domains'] == []
    assert 'libvirt-python is not installed: domains skipped' in result['notes']
    assert 'dkms is not installed' in result['notes']


def test_gather_libvirt_unreachable(host_root, monkeypatch):
    monkeypatch.setitem(sys.modules, 'libvirt', fake_libvirt.make_module(None, fail_open=True))
    result = info.gather(FakeModule(params(), {}), str(host_root))
    assert any(note.startswith('Cannot connect to libvirt') for note in result['notes'])


def test_gather_domains_off(host_root, libvirt_conn):
    result = info.gather(FakeModule(params(domains=False), {}), str(host_root))
    assert result['domains'] == [] and not any('libvirt' in note for note in result['notes'])


def test_gather_qemu_updates(host_root):
    """apt-cache policy is asked in the C locale; a Debian version above the patched one is reported."""
    with open(os.path.join(FIXTURES, 'apt-policy', 'patched-installed-debian-newer.txt')) as handle:
        policy = handle.read()
    module = FakeModule(params(domains=False), {('policy', 'qemu-system-x86'): (0, policy, '')},
                        bins=('apt-cache',))
    qemu = info.gather(module, str(host_root))['qemu']
    assert ['/usr/sbin/apt-cache', 'policy', 'qemu-system-x86'] in module.calls
    assert module.options[module.calls.index(['/usr/sbin/apt-cache', 'policy', 'qemu-system-x86'])] == {
        'environ_update': {'LC_ALL': 'C', 'LANGUAGE': 'C'}}
    assert qemu['patched_installed'] is True and qemu['newer_upstream'] is True
    assert qemu['installed_version'] == '1:7.2+dfsg-7+deb12u18+vhostblk3'
    assert qemu['debian_candidate'] == '1:7.2+dfsg-7+deb12u19' and qemu['policy_error'] is None
    assert qemu['stale_vms'] == []  # the fake root has no /proc


def test_main_runs_in_check_mode(monkeypatch, libvirt_conn):
    calls = []

    def fake_gather(module, root='/'):
        calls.append((module.params['qemu_binary'], module.check_mode, root))
        return {'changed': False, 'domains': []}
    monkeypatch.setattr(info, 'gather', fake_gather)
    result = run(monkeypatch, info.main, {'qemu_binary': '/opt/qemu/bin/qemu-system-x86_64'},
                 check_mode=True)
    assert result['changed'] is False and 'ansible_facts' not in result
    assert calls == [('/opt/qemu/bin/qemu-system-x86_64', True, '/')]


def test_main_on_this_host(monkeypatch, libvirt_conn):
    """Real /sys, /proc, /boot of the test machine: must not fail whatever is there."""
    result = run(monkeypatch, info.main, {})
    assert set(result) >= {'module', 'kernels', 'dkms', 'device', 'qemu', 'qemu_conf', 'domains', 'notes'}
    assert isinstance(result['device']['users'], list)
    assert isinstance(result['qemu']['stale_vms'], list)
    assert set(result['qemu']) >= {'installed_version', 'debian_candidate', 'newer_upstream', 'policy_error'}


def test_domains_read_only_connection(host_root, monkeypatch):
    conn = fake_libvirt.FakeConn()
    module = fake_libvirt.make_module(conn)
    monkeypatch.setitem(sys.modules, 'libvirt', module)
    info.gather(FakeModule(params(uri='qemu+ssh://h/system'), {}), str(host_root))
    assert module.read_only == ['qemu+ssh://h/system']


def test_gather_libvirt_error_while_listing(host_root, monkeypatch):
    conn = fake_libvirt.FakeConn()

    def broken(flags=0):
        raise fake_libvirt.libvirtError('internal error: client socket is closed')
    conn.listAllDomains = broken
    monkeypatch.setitem(sys.modules, 'libvirt', fake_libvirt.make_module(conn))
    result = info.gather(FakeModule(params(), {}), str(host_root))
    assert result['domains'] == []
    assert 'libvirt error: internal error: client socket is closed: domains skipped' in result['notes']


def test_gather_vhost_user_disks_and_instances(host_root, tmp_path, monkeypatch):
    root = parse_xml(fixture('vm1-q35.xml', tmp_path))
    disk_spec = vu.make_spec('data', '/srv/vm1-data.img', target='vdc', queues=2, instance='vm1-data',
                             socket='/run/vhost-blk/vm1-data.sock')
    vu.set_disk(root, disk_spec)
    vu.set_record(root, disk_spec)
    vu.ensure_shared_memory(root)
    conn = fake_libvirt.FakeConn()
    conn.add(to_xml(root), active=True, live_xml=fixture('vm1-q35.xml', tmp_path))
    monkeypatch.setitem(sys.modules, 'libvirt', fake_libvirt.make_module(conn))
    conf_dir = host_root / 'etc' / 'vhost-blk' / 'user'
    conf_dir.mkdir(parents=True)
    (conf_dir / 'vm1-data.conf').write_text(svc.render_conf('vm1', 'data', '/srv/vm1-data.img', ['--queues', '2']))

    result = info.gather(FakeModule(params(), {}), str(host_root))
    vm1 = result['domains'][0]
    assert vm1['name'] == 'vm1' and vm1['disks'] == [] and vm1['live_vhost_user_disks'] == []
    assert vm1['vhost_user_disks'] == [{
        'id': 'data', 'target': 'vdc', 'socket': '/run/vhost-blk/vm1-data.sock', 'queues': 2, 'queue_size': None,
        'bootindex': None, 'instance': 'vm1-data', 'path': '/srv/vm1-data.img', 'readonly': False,
        'converted_from': None}]
    assert vm1['restart_required'] is True                 # the running vm1 lacks the disk
    assert result['vhost_user']['template_installed'] is False
    instance = result['vhost_user']['instances'][0]
    assert (instance['instance'], instance['backing'], instance['domain'], instance['id'], instance['active']) == \
        ('vm1-data', '/srv/vm1-data.img', 'vm1', 'data', False)
