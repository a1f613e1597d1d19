# SPDX-License-Identifier: GPL-2.0-or-later
"""transport vhost-user against the fake libvirt: running domains, hot-plug, ownership.

What libvirt itself accepts (XML shape, memoryBacking, conversion) is checked against real
libvirt in test_disk_real_libvirt.py; the fake can run domains and record hot-plug calls.
"""

import os
import sys

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_backend_service as svc
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_vhostuser as vu
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import parse_xml
from ansible_collections.vhostblk.fleet.plugins.modules import disk
from ansible_collections.vhostblk.fleet.tests.unit.plugins import fake_libvirt, fake_systemctl
from ansible_collections.vhostblk.fleet.tests.unit.plugins.module_harness import ModuleFail, fixture, run

ME = str(os.getuid())
MY_GROUP = str(os.getgid())
SHARED = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"


def running_xml(images, name, shared=True):
    xml = fixture('vm1-q35.xml', images).replace('vm1', name).replace(
        '2f6b1c7e-4a55-4c0e-9f8e-1d2a3b4c5d6e', '2f6b1c7e-4a55-4c0e-9f8e-1d2a3b4c5d7' + name[-1])
    if shared:
        xml = xml.replace('<vcpu', SHARED + '<vcpu', 1)
    return xml


@pytest.fixture
def images(tmp_path):
    path = tmp_path / 'images'
    path.mkdir()
    for name in ('vm1-native.img', 'vm4-native.img', 'vm5-native.img', 'vblk0.img', 'vblk1.img'):
        (path / name).write_bytes(b'\x00' * 65536)
    return path


@pytest.fixture
def host(tmp_path, monkeypatch):
    root = tmp_path / 'host'
    (root / 'lib' / 'systemd' / 'system').mkdir(parents=True)
    (root / 'lib' / 'systemd' / 'system' / svc.UNIT_TEMPLATE).write_text('[Service]\n')
    state = tmp_path / 'systemd'
    systemctl = fake_systemctl.write(str(tmp_path / 'systemctl'), str(state))
    monkeypatch.setattr(svc, 'DEFAULT_ROOT', str(root))
    monkeypatch.setattr(svc, 'DEFAULT_SYSTEMCTL', systemctl)
    return {'root': root, 'state': str(state), 'conf': root / 'etc' / 'vhost-blk' / 'user'}


@pytest.fixture
def conn(images, host, monkeypatch):
    """vm1 shut off; vm4 running with shared memory; vm5 running without."""
    fake = fake_libvirt.FakeConn()
    fake.add(fixture('vm1-q35.xml', images))
    fake.add(running_xml(images, 'vm4'), active=True)
    fake.add(running_xml(images, 'vm5', shared=False), active=True)
    module = fake_libvirt.make_module(fake)
    monkeypatch.setitem(sys.modules, 'libvirt', module)
    monkeypatch.setattr(disk, 'is_char_device', lambda path: path == '/dev/vhost-blk')
    return fake


def args(images, **kwargs):
    base = {'name': 'vm4', 'id': 'vblk0', 'path': str(images / 'vblk0.img'), 'owner': ME, 'group': MY_GROUP}
    base.update(kwargs)
    return base


def live(conn, name='vm4'):
    return parse_xml(conn.domains[name].XMLDesc(0))


def persistent(conn, name='vm4'):
    return parse_xml(conn.domains[name].XMLDesc(fake_libvirt.VIR_DOMAIN_XML_INACTIVE))


def test_hotplug_add_update_remove(monkeypatch, conn, images, host):
    added = run(monkeypatch, disk.main, args(images, live=True, queues=2))
    assert added['changed'] is True and added['restart_required'] is False, added
    assert added['live'] == ['attach vhostuser vdc']
    assert 'running domain changed too' in added['msg']
    operation, xml_text, flags = conn.hotplug[-1]
    assert operation == 'attach' and flags == fake_libvirt.VIR_DOMAIN_AFFECT_LIVE
    assert xml_text.startswith('<disk type="vhostuser"') and '<alias name="ua-vblk0" />' in xml_text
    assert vu.find_element(live(conn), 'vblk0') is not None
    assert vu.find_element(persistent(conn), 'vblk0') is not None
    # the service is started before libvirt connects to its socket
    assert fake_systemctl.mutating(host['state']) == ['enable --now vhost-blk-user@vm4-vblk0.service']

    again = run(monkeypatch, disk.main, args(images, live=True, queues=2))
    assert again['changed'] is False and again['live'] == [] and len(conn.hotplug) == 1

    updated = run(monkeypatch, disk.main, args(images, live=True, queues=4))
    assert updated['live'] == ['detach vhostuser vdc', 'attach vhostuser vdc'], updated
    assert vu.disk_view(vu.find_element(live(conn), 'vblk0'))['queues'] == '4'
    assert fake_systemctl.mutating(host['state'])[-1] == 'restart vhost-blk-user@vm4-vblk0.service'

    removed = run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent', 'live': True})
    assert removed['live'] == ['detach vhostuser vdc'] and removed['restart_required'] is False, removed
    assert vu.find_element(live(conn), 'vblk0') is None
    assert fake_systemctl.mutating(host['state'])[-1] == 'disable --now vhost-blk-user@vm4-vblk0.service'


def test_check_mode_plans_hotplug_without_doing_it(monkeypatch, conn, images, host):
    planned = run(monkeypatch, disk.main, args(images, live=True), check_mode=True)
    assert planned['changed'] is True and planned['live'] == ['attach vhostuser vdc']
    assert planned['service']['actions'] == ['write', 'enable', 'start']
    assert conn.hotplug == [] and conn.defined == [] and fake_systemctl.mutating(host['state']) == []
    assert not host['conf'].exists()


def test_live_conversion_and_restore(monkeypatch, conn, images, host):
    converted = run(monkeypatch, disk.main, args(images, id='data', path=None, convert_from='vdb', live=True))
    assert converted['live'] == ['detach file vdb', 'attach vhostuser vdb'], converted
    assert vu.find_target(live(conn), 'vdb').get('type') == 'vhostuser'
    restored = run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'data', 'state': 'absent', 'live': True})
    assert restored['live'] == ['detach vhostuser vdb', 'attach file vdb'], restored
    assert vu.find_target(live(conn), 'vdb').get('type') == 'file'
    assert vu.find_target(persistent(conn), 'vdb').get('type') == 'file'


def test_unplug_waits_for_the_guest(monkeypatch, conn, images, host):
    """pciehp lets go of a device after its attention-button delay, often after libvirt returned."""
    run(monkeypatch, disk.main, args(images, live=True))
    slept = []
    monkeypatch.setattr(disk.time, 'sleep', slept.append)
    conn.guest_release_polls = 3
    removed = run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent', 'live': True})
    assert removed['live'] == ['detach vhostuser vdc'] and slept, (removed, slept)
    assert vu.find_element(live(conn), 'vblk0') is None
    assert fake_systemctl.mutating(host['state'])[-1] == 'disable --now vhost-blk-user@vm4-vblk0.service'


def test_guest_keeps_the_disk(monkeypatch, conn, images, host):
    run(monkeypatch, disk.main, args(images, live=True))
    conn.guest_keeps_disks = True
    monkeypatch.setattr(disk, 'UNPLUG_WAIT', 0)
    with pytest.raises(ModuleFail) as info:
        run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent', 'live': True})
    assert 'has not released disk vdc within 0 s' in info.value.result['msg']
    # nothing else changed: the definition and the service are as before
    assert vu.find_element(persistent(conn), 'vblk0') is not None
    assert fake_systemctl.mutating(host['state']) == ['enable --now vhost-blk-user@vm4-vblk0.service']


def test_running_domain_without_live(monkeypatch, conn, images, host):
    added = run(monkeypatch, disk.main, args(images))
    assert added['restart_required'] is True and added['live'] == [] and conn.hotplug == []
    assert 'restart the domain' in added['msg']
    conn.domains['vm4'].live = conn.domains['vm4'].persistent      # "restarted"
    assert run(monkeypatch, disk.main, args(images))['restart_required'] is False
    removed = run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent'})
    assert removed['restart_required'] is True and removed['service']['actions'] == []
    assert any('keeps running' in warning for warning in removed['warnings'])
    assert (host['conf'] / 'vm4-vblk0.conf').exists()
    conn.domains['vm4'].live = conn.domains['vm4'].persistent
    cleaned = run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent'})
    assert cleaned['changed'] is True and cleaned['action'] == 'unchanged'
    assert cleaned['service']['actions'] == ['stop', 'disable', 'remove']


def test_running_domain_without_shared_memory(monkeypatch, conn, images, host):
    result = run(monkeypatch, disk.main, args(images, name='vm5', live=True))
    assert result['restart_required'] is True and conn.hotplug == []
    assert any('no shared memory' in warning for warning in result['warnings'])
    assert vu.has_shared_memory(persistent(conn, 'vm5'))


def test_ownership_goes_to_the_service_user(monkeypatch, conn, images, host):
    result = run(monkeypatch, disk.main, args(images, name='vm1'))
    assert result['ownership']['owner'] == ME and result['ownership']['changed'] is False

    def no_such_user(name):
        raise KeyError(name)
    monkeypatch.setattr(disk.pwd, 'getpwnam', no_such_user)
    with pytest.raises(ModuleFail) as info:
        run(monkeypatch, disk.main, {'name': 'vm1', 'id': 'vblk1', 'path': str(images / 'vblk1.img')})
    assert 'vhost-blk' in info.value.result['msg'] and 'vhost-blk-tools' in info.value.result['msg']


def test_absent_without_transport_takes_the_vhost_user_disk(monkeypatch, conn, images, host):
    run(monkeypatch, disk.main, args(images, name='vm1'))
    removed = run(monkeypatch, disk.main, {'name': 'vm1', 'id': 'vblk0', 'state': 'absent'})
    assert removed['transport'] == 'vhost-user' and removed['action'] == 'removed'


def test_qemu_device_disk_with_the_same_id(monkeypatch, conn, images, host):
    run(monkeypatch, disk.main, args(images, name='vm1', transport='qemu-device'))
    with pytest.raises(ModuleFail) as info:
        run(monkeypatch, disk.main, args(images, name='vm1', path=str(images / 'vblk1.img')))
    assert 'is a qemu-device (vhost-blk-pci) disk' in info.value.result['msg']


def test_replace_with_native_gives_the_disk_back_as_virtio_blk(monkeypatch, conn, images, host):
    """The removal playbook's path: the vhost-user disk becomes QEMU's own virtio-blk on the same
    backing, at the same target and PCI slot, with its serial and boot order, live and persistent."""
    run(monkeypatch, disk.main, args(images, live=True, serial='data-1', bootindex=2))
    slot = vu.find_element(live(conn), 'vblk0').find('address')
    removed = run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent', 'live': True,
                                           'replace_with_native': True})
    assert removed['live'] == ['detach vhostuser vdc', 'attach file vdc'], removed
    for root in (live(conn), persistent(conn)):
        native = vu.find_target(root, 'vdc')
        assert native.get('type') == 'file' and native.find('source').get('file') == str(images / 'vblk0.img')
        assert native.find('target').get('bus') == 'virtio' and native.find('serial').text == 'data-1'
        assert native.find('boot').get('order') == '2' and native.find('driver').get('cache') == 'none'
        assert vu.find_record(root, 'vblk0') is None
    if slot is not None:
        assert vu.find_target(live(conn), 'vdc').find('address').attrib == slot.attrib
    assert fake_systemctl.mutating(host['state'])[-1] == 'disable --now vhost-blk-user@vm4-vblk0.service'
    again = run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent', 'live': True,
                                         'replace_with_native': True})
    assert again['changed'] is False, again


def test_replace_with_native_needs_the_backing(monkeypatch, conn, images, host):
    run(monkeypatch, disk.main, args(images))
    os.unlink(images / 'vblk0.img')
    with pytest.raises(ModuleFail) as info:
        run(monkeypatch, disk.main, {'name': 'vm4', 'id': 'vblk0', 'state': 'absent', 'replace_with_native': True})
    assert 'its backing' in info.value.result['msg'] and 'is not there' in info.value.result['msg']
    assert vu.find_element(persistent(conn), 'vblk0') is not None
