# SPDX-License-Identifier: GPL-2.0-or-later

import subprocess

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_backend_service as svc
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import VhostBlkError
from ansible_collections.vhostblk.fleet.tests.unit.plugins import fake_systemctl


def run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def service(tmp_path):
    (tmp_path / 'root' / 'lib' / 'systemd' / 'system').mkdir(parents=True)
    (tmp_path / 'root' / 'lib' / 'systemd' / 'system' / svc.UNIT_TEMPLATE).write_text('')
    systemctl = fake_systemctl.write(str(tmp_path / 'systemctl'), str(tmp_path / 'state'))
    backend = svc.BackendService(run, root=str(tmp_path / 'root'), systemctl=systemctl)
    backend.state_dir = str(tmp_path / 'state')
    return backend


@pytest.mark.parametrize('domain, disk_id, expected', [
    ('vm1', 'vblk0', 'vm1-vblk0'),
    ('web.example.com', 'data', 'web.example.com-data'),
])
def test_instance_name_plain(domain, disk_id, expected):
    assert svc.instance_name(domain, disk_id) == expected
    svc.validate_instance(expected)


@pytest.mark.parametrize('domain', ['my vm', 'vm/ä', '-vm', 'x' * 200, 'vm@1'])
def test_instance_name_escaped_distinct_and_short(domain):
    name = svc.instance_name(domain, 'vblk0')
    svc.validate_instance(name)
    assert name.endswith('-vblk0') and len(svc.socket_path(name)) < 108
    assert name != svc.instance_name(domain + 'x', 'vblk0')


@pytest.mark.parametrize('bad', ['', '-x', '.x', 'a/b', 'a b', 'a\\x2d', 'x' * 90])
def test_validate_instance_refuses(bad):
    with pytest.raises(VhostBlkError, match='Invalid instance name'):
        svc.validate_instance(bad)


def test_conf_round_trip():
    text = svc.render_conf('my "vm"', 'vblk0', '/srv/a b.img',
                           svc.options_of('SER1', 4, True, 'writeback'))
    assert text == ('# managed by vhostblk.fleet.disk: domain="my \\"vm\\"" id=vblk0\n'
                    'BACKING="/srv/a b.img"\n'
                    'OPTIONS="--serial SER1 --queues 4 --readonly --cache writeback"\n')
    assert svc.conf_owner(text) == ('my "vm"', 'vblk0')
    assert svc.conf_values(text)['BACKING'] == '/srv/a b.img'
    assert svc.render_conf('vm1', 'd', '/srv/a.img') == \
        '# managed by vhostblk.fleet.disk: domain=vm1 id=d\nBACKING=/srv/a.img\n'
    assert svc.conf_owner('BACKING=/x\n') is None


def test_conf_refuses_split_words():
    with pytest.raises(VhostBlkError, match='white space'):
        svc.render_conf('vm1', 'd', '/a', ['--serial', 'a b'])


def test_plans():
    fresh = {'conf': None, 'enabled': False, 'active': False}
    running = {'conf': 'X', 'enabled': True, 'active': True}
    assert svc.BackendService.plan_present(fresh, 'X') == ['write', 'enable', 'start']
    assert svc.BackendService.plan_present(running, 'X') == []
    assert svc.BackendService.plan_present(running, 'Y') == ['write', 'restart']
    assert svc.BackendService.plan_present(dict(running, active=False), 'X') == ['start']
    assert svc.BackendService.plan_absent(running) == ['stop', 'disable', 'remove']
    assert svc.BackendService.plan_absent(running, keep_running=True) == []
    assert svc.BackendService.plan_absent(fresh) == []


def test_apply_and_facts(service):
    conf = svc.render_conf('vm1', 'vblk0', '/srv/a.img', ['--queues', '2'])
    state = service.state('vm1-vblk0')
    assert state == {'conf': None, 'enabled': False, 'active': False}
    service.apply('vm1-vblk0', service.plan_present(state, conf), conf)
    assert service.read_conf('vm1-vblk0') == conf
    assert service.state('vm1-vblk0') == {'conf': conf, 'enabled': True, 'active': True}
    assert fake_systemctl.mutating(service.state_dir) == ['enable --now vhost-blk-user@vm1-vblk0.service']
    facts = service.instances()
    assert facts == [{
        'instance': 'vm1-vblk0', 'unit': 'vhost-blk-user@vm1-vblk0.service',
        'socket': '/run/vhost-blk/vm1-vblk0.sock', 'socket_exists': False,
        'conf': service.conf_path('vm1-vblk0'), 'backing': '/srv/a.img', 'options': ['--queues', '2'],
        'domain': 'vm1', 'id': 'vblk0', 'enabled': True, 'active': True}]
    service.apply('vm1-vblk0', service.plan_absent(service.state('vm1-vblk0')))
    assert service.read_conf('vm1-vblk0') is None
    assert fake_systemctl.mutating(service.state_dir)[-1] == 'disable --now vhost-blk-user@vm1-vblk0.service'
    assert service.instances() == []


def test_check_owner(service):
    service.write_conf('vm1-vblk0', svc.render_conf('vm2', 'x', '/a'))
    with pytest.raises(VhostBlkError, match='belongs to disk x of domain vm2'):
        service.check_owner('vm1-vblk0', 'vm1', 'vblk0')
    service.check_owner('vm1-vblk0', 'vm2', 'x')


def test_failing_systemctl(service, tmp_path):
    (tmp_path / 'state').mkdir(exist_ok=True)
    (tmp_path / 'state' / 'fail').write_text('restart')
    with pytest.raises(VhostBlkError, match='systemctl restart vhost-blk-user@a.service failed.*journalctl'):
        service.apply('a', ['restart'])


def test_template_missing(tmp_path):
    backend = svc.BackendService(run, root=str(tmp_path), systemctl='/nonexistent/systemctl')
    assert not backend.template_installed()
    # no template, no conf: the unit is not even asked about
    assert backend.state('a') == {'conf': None, 'enabled': False, 'active': False}
