# SPDX-License-Identifier: GPL-2.0-or-later


import os
import sys

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import (
    QEMU_NS,
    find_disk,
    parse_xml,
    vhostblk_disks,
)
from ansible_collections.vhostblk.fleet.plugins.modules import disk
from ansible_collections.vhostblk.fleet.tests.unit.plugins import fake_libvirt
from ansible_collections.vhostblk.fleet.tests.unit.plugins.module_harness import (
    ModuleFail,
    fixture,
    run,
)

ME = str(os.getuid())
MY_GROUP = str(os.getgid())


@pytest.fixture
def images(tmp_path):
    for name in ('vm1-native.img', 'vm2-root.img', 'vm3-data.img', 'vblk0.img', 'vblk1.img'):
        (tmp_path / name).write_bytes(b'\x00' * 65536)
    (tmp_path / 'vm1-root.qcow2').write_bytes(b'QFI\xfb\x00\x00\x00\x03' + b'\x00' * 504)
    return tmp_path


@pytest.fixture
def conn(images, monkeypatch):
    """A fake libvirt with vm1 (shut off), vm2 and vm3; /dev/vhost-blk 'present'."""
    fake = fake_libvirt.FakeConn()
    fake.add(fixture('vm1-q35.xml', images))
    fake.add(fixture('vm2-plain.xml', images))
    fake.add(fixture('vm3-vhostblk.xml', images), active=True)
    module = fake_libvirt.make_module(fake)
    monkeypatch.setitem(sys.modules, 'libvirt', module)
    monkeypatch.setattr(disk, 'is_char_device', lambda path: path == '/dev/vhost-blk')
    fake.module = module
    return fake


def args(images, **kwargs):
    base = {'name': 'vm1', 'id': 'vblk0', 'path': str(images / 'vblk0.img'),
            'owner': ME, 'group': MY_GROUP, 'transport': 'qemu-device'}
    base.update(kwargs)
    return base


def persistent(conn, name='vm1'):
    return parse_xml(conn.domains[name].XMLDesc(fake_libvirt.VIR_DOMAIN_XML_INACTIVE))


def user_args(root):
    return [a.get('value') for a in root.iter(f'{{{QEMU_NS}}}arg') if 'vhost-blk' not in a.get('value')]


# ---- add, idempotence, update, remove ---------------------------------------

def test_add_then_idempotent(monkeypatch, conn, images):
    result = run(monkeypatch, disk.main, args(images, queues=4, queue_size=256, bootindex=5))
    assert result['changed'] is True and result['action'] == 'added'
    assert result['disk']['device'] == (f'vhost-blk-pci,id=vblk0,drive={images}/vblk0.img,num-queues=4,'
                                        'queue-size=256,bootindex=5')
    assert result['restart_required'] is False
    assert 'next start' in result['msg']
    assert result['image'] == {'kind': 'file', 'size': 65536, 'format': 'raw'}
    assert len(conn.defined) == 1
    assert conn.module.opened == ['qemu:///system']
    spec = find_disk(persistent(conn), 'vblk0')
    assert (spec['queues'], spec['queue_size'], spec['bootindex']) == (4, 256, 5)

    again = run(monkeypatch, disk.main, args(images, queues=4, queue_size=256, bootindex=5))
    assert again['changed'] is False and again['action'] == 'unchanged'
    assert len(conn.defined) == 1


def test_define_keeps_secrets_and_namespace(monkeypatch, conn, images):
    run(monkeypatch, disk.main, args(images))
    text = conn.defined[0]
    assert "passwd=\"s3cret\"" in text          # read with VIR_DOMAIN_XML_SECURE
    assert f'xmlns:qemu="{QEMU_NS}"' in text.splitlines()[0]
    # what libvirt stored (and would show in virsh edit) parses back to the same disk
    stored = conn.domains['vm1'].XMLDesc(fake_libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert f"xmlns:qemu='{QEMU_NS}'" in stored.splitlines()[0]
    assert find_disk(parse_xml(stored), 'vblk0')['path'] == str(images / 'vblk0.img')


def test_update_queues_replaces_only_its_args(monkeypatch, conn, images):
    run(monkeypatch, disk.main, args(images, queues=2))
    run(monkeypatch, disk.main, args(images, id='vblk1', path=str(images / 'vblk1.img')))
    result = run(monkeypatch, disk.main, args(images, queues=8), diff=True)
    assert result['changed'] is True and result['action'] == 'updated'
    root = persistent(conn)
    assert [d['id'] for d in vhostblk_disks(root)] == ['vblk0', 'vblk1']
    assert find_disk(root, 'vblk0')['queues'] == 8
    assert user_args(root) == ['-fw_cfg', 'name=opt/com.example/role,string=db', '-device',
                               'pvpanic,ioport=0x505', '-device', '-device']
    assert 'num-queues=2' in result['diff']['before'] and 'num-queues=8' in result['diff']['after']
    assert 'num-queues=2' not in result['diff']['after']


def test_remove_leaves_user_args(monkeypatch, conn, images):
    original = user_args(persistent(conn))
    run(monkeypatch, disk.main, args(images))
    result = run(monkeypatch, disk.main, {'name': 'vm1', 'id': 'vblk0', 'state': 'absent'})
    assert result['changed'] is True and result['action'] == 'removed'
    assert result['disk'] is None
    root = persistent(conn)
    assert vhostblk_disks(root) == [] and user_args(root) == original
    assert root.find(f'{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}env') is not None
    again = run(monkeypatch, disk.main, {'name': 'vm1', 'id': 'vblk0', 'state': 'absent'})
    assert again['changed'] is False and len(conn.defined) == 2


def test_absent_needs_no_path_nor_device(monkeypatch, conn, images):
    monkeypatch.setattr(disk, 'is_char_device', lambda path: False)
    result = run(monkeypatch, disk.main, {'name': 'vm3', 'id': 'data0', 'state': 'absent'})
    assert result['changed'] is True
    assert result['restart_required'] is True            # vm3 runs with data0
    assert 'restart the domain' in result['msg']
    assert persistent(conn, 'vm3').find(f'{{{QEMU_NS}}}commandline') is None


# ---- check mode and diff ------------------------------------------------------

def test_check_mode_reports_and_defines_nothing(monkeypatch, conn, images):
    before = conn.domains['vm1'].persistent
    result = run(monkeypatch, disk.main, args(images, queues=4), check_mode=True, diff=True)
    assert result['changed'] is True and result['action'] == 'added'
    assert conn.defined == [] and conn.domains['vm1'].persistent == before
    assert 'vhost-blk-pci,id=vblk0' not in result['diff']['before']
    assert 'vhost-blk-pci,id=vblk0' in result['diff']['after']
    assert 'pvpanic' in result['diff']['after']
    assert "s3cret" not in result['diff']['before'] + result['diff']['after']
    assert result['diff']['before_header'] == 'vm1 (persistent definition)'


def test_check_mode_unchanged_after_apply(monkeypatch, conn, images):
    run(monkeypatch, disk.main, args(images, queues=4))
    result = run(monkeypatch, disk.main, args(images, queues=4), check_mode=True, diff=True)
    assert result['changed'] is False and 'diff' not in result


def test_diff_real_run(monkeypatch, conn, images):
    result = run(monkeypatch, disk.main, args(images), diff=True)
    assert set(result['diff']) == {'before', 'after', 'before_header', 'after_header'}
    assert result['diff']['before'] != result['diff']['after']


# ---- running domains ----------------------------------------------------------

def test_running_domain_needs_restart_until_restarted(monkeypatch, conn, images):
    result = run(monkeypatch, disk.main, args(images, name='vm3', queues=2))
    assert result['changed'] is True and result['restart_required'] is True
    assert 'restart the domain' in result['msg']
    # idempotent, but still not applied
    again = run(monkeypatch, disk.main, args(images, name='vm3', queues=2))
    assert again['changed'] is False and again['restart_required'] is True
    # "restart": the live XML becomes the persistent one
    dom = conn.domains['vm3']
    dom.live = dom.persistent
    third = run(monkeypatch, disk.main, args(images, name='vm3', queues=2))
    assert third['changed'] is False and third['restart_required'] is False


def test_running_domain_update_of_existing_disk(monkeypatch, conn, images):
    result = run(monkeypatch, disk.main, args(images, name='vm3', id='data0',
                                              path=str(images / 'vm3-data.img'), queues=4))
    assert result['action'] == 'updated' and result['restart_required'] is True
    same = run(monkeypatch, disk.main, args(images, name='vm3', id='data0',
                                            path=str(images / 'vm3-data.img'), queues=2))
    assert same['action'] == 'updated' and same['restart_required'] is False


# ---- ownership -----------------------------------------------------------------

def test_ownership_changed_and_check_mode_only_reports(monkeypatch, conn, images):
    calls = []
    monkeypatch.setattr(disk.os, 'chown', lambda path, uid, gid: calls.append((path, uid, gid)))
    path = str(images / 'vblk0.img')
    result = run(monkeypatch, disk.main, args(images, owner='64055', group='64055'), check_mode=True)
    assert result['ownership']['changed'] is True and calls == []
    result = run(monkeypatch, disk.main, args(images, owner='64055', group='64055'))
    assert calls == [(path, 64055, 64055)]
    assert result['ownership']['owner'] == '64055' and result['ownership']['path'] == path


def test_ownership_only_change_is_a_change(monkeypatch, conn, images):
    run(monkeypatch, disk.main, args(images))
    monkeypatch.setattr(disk.os, 'chown', lambda path, uid, gid: None)
    result = run(monkeypatch, disk.main, args(images, owner='64055', group='64055'))
    assert result['changed'] is True and result['action'] == 'unchanged'


def test_ownership_default_from_qemu_identity(monkeypatch, conn, images):
    monkeypatch.setattr(disk, 'qemu_identity', lambda: (ME, MY_GROUP))
    result = run(monkeypatch, disk.main, args(images, owner=None, group=None))
    assert result['ownership']['changed'] is False
    assert (result['ownership']['owner'], result['ownership']['group']) == (ME, MY_GROUP)


def test_ownership_undetectable(monkeypatch, conn, images):
    monkeypatch.setattr(disk, 'qemu_identity', lambda: (None, None))
    with pytest.raises(ModuleFail, match='Cannot tell which user and group QEMU runs as'):
        run(monkeypatch, disk.main, args(images, owner=None, group=None))


def test_ownership_unknown_user(monkeypatch, conn, images):
    with pytest.raises(ModuleFail, match='Unknown user or group'):
        run(monkeypatch, disk.main, args(images, owner='no-such-user-vhostblk'))


def test_manage_ownership_off(monkeypatch, conn, images):
    result = run(monkeypatch, disk.main, args(images, owner='64055', group='64055',
                                              manage_ownership=False))
    assert 'ownership' not in result


# ---- errors ----------------------------------------------------------------------

def fails(monkeypatch, module_args, words):
    with pytest.raises(ModuleFail) as info:
        run(monkeypatch, disk.main, module_args)
    assert words in info.value.result['msg'], info.value.result['msg']
    return info.value.result


def test_missing_domain(monkeypatch, conn, images):
    fails(monkeypatch, args(images, name='nope'), 'Domain nope not found')
    fails(monkeypatch, {'name': 'nope', 'id': 'vblk0', 'state': 'absent'}, 'Domain nope not found')


def test_missing_backing_path(monkeypatch, conn, images):
    fails(monkeypatch, args(images, path=str(images / 'absent.img')), 'does not exist')


def test_backing_path_is_a_directory(monkeypatch, conn, images):
    fails(monkeypatch, args(images, path=str(images)), 'neither a regular file nor a block device')


@pytest.mark.parametrize('magic, fmt', [
    (b'QFI\xfb\x00\x00\x00\x03', 'qcow2'), (b'KDMV\x01\x00\x00\x00', 'vmdk'),
    (b'\x00' * 0x40 + b'\x7f\x10\xda\xbe', 'vdi'), (b'vhdxfile', 'vhdx'), (b'QED\x00', 'qed'),
])
def test_non_raw_image(monkeypatch, conn, images, magic, fmt):
    path = images / ('image.' + fmt)
    path.write_bytes(magic + b'\x00' * 512)
    result = fails(monkeypatch, args(images, path=str(path)), f'is a {fmt} image')
    assert 'raw images only' in result['msg']
    assert conn.defined == []


def test_missing_device(monkeypatch, conn, images):
    monkeypatch.setattr(disk, 'is_char_device', lambda path: False)
    fails(monkeypatch, args(images), '/dev/vhost-blk is missing')
    result = run(monkeypatch, disk.main, args(images, check_device=False))
    assert result['changed'] is True


def test_path_used_by_native_disk_of_domain(monkeypatch, conn, images):
    fails(monkeypatch, args(images, path=str(images / 'vm1-native.img')),
          'already used by disk vdb of domain vm1')


def test_path_used_by_other_vhostblk_disk(monkeypatch, conn, images):
    run(monkeypatch, disk.main, args(images))
    fails(monkeypatch, args(images, id='vblk1'), 'already used by vhost-blk disk vblk0 of domain vm1')


def test_path_used_through_symlink(monkeypatch, conn, images):
    os.symlink(str(images / 'vm1-native.img'), str(images / 'link.img'))
    fails(monkeypatch, args(images, path=str(images / 'link.img')), 'disk vdb of domain vm1')


def test_path_used_by_other_domain(monkeypatch, conn, images):
    fails(monkeypatch, args(images, path=str(images / 'vm2-root.img')), 'disk vda of domain vm2')
    fails(monkeypatch, args(images, path=str(images / 'vm3-data.img')),
          'vhost-blk disk data0 of domain vm3')


@pytest.mark.parametrize('extra, words', [
    ({'queues': 0}, 'queues must be between 1 and 16'),
    ({'queues': 17}, 'queues must be between 1 and 16'),
    ({'queue_size': 1000}, 'queue_size must be a power of two between 4 and 1024'),
    ({'queue_size': 2048}, 'queue_size must be a power of two'),
    ({'id': 'vblk 0'}, 'Invalid disk id'),
    ({'queue_size': 2}, 'queue_size must be a power of two between 4 and 1024'),
    ({'serial': 'S' * 21}, 'serial must be 1 to 20 bytes'),
    ({'serial': 'VM1DATA'}, 'serial is not supported yet: vhost-blk ABI 1'),
    ({'bootindex': 1}, "<boot order='1'/>"),
])
def test_bad_values(monkeypatch, conn, images, extra, words):
    fails(monkeypatch, args(images, **extra), words)
    assert conn.defined == []


def test_present_requires_path(monkeypatch, conn, images):
    fails(monkeypatch, {'name': 'vm1', 'id': 'vblk0'}, 'path')


def test_libvirt_connection_error(monkeypatch, conn, images):
    monkeypatch.setitem(sys.modules, 'libvirt', fake_libvirt.make_module(conn, fail_open=True))
    fails(monkeypatch, args(images, uri='qemu+ssh://h/system'), 'Cannot connect to libvirt at qemu+ssh://h/system')


def test_libvirt_missing(monkeypatch, conn, images):
    monkeypatch.setitem(sys.modules, 'libvirt', None)      # makes "import libvirt" fail
    result = fails(monkeypatch, args(images), 'libvirt-python')
    assert 'exception' in result


def test_define_refused(monkeypatch, conn, images):
    def refuse(xml_text):
        raise fake_libvirt.libvirtError('unsupported configuration: no good')
    monkeypatch.setattr(conn, 'defineXML', refuse)
    fails(monkeypatch, args(images), 'libvirt refused the new definition: unsupported configuration')


def test_transient_domain_refused(monkeypatch, conn, images):
    conn.domains['vm1'].transient = True
    fails(monkeypatch, args(images), 'Domain vm1 is transient')


@pytest.mark.parametrize('acl, warned', [(None, True), (['/dev/null', '/dev/vhost-blk'], False)])
def test_warns_when_device_not_in_cgroup_acl(monkeypatch, conn, images, acl, warned):
    monkeypatch.setattr(disk, 'qemu_conf_facts',
                        lambda: {'present': True, 'cgroup_device_acl': acl,
                                 'device_allowed': bool(acl) and '/dev/vhost-blk' in acl})
    result = run(monkeypatch, disk.main, args(images))
    warnings = result.get('warnings') or []
    assert any('cgroup_device_acl' in w for w in warnings) is warned


def test_embedded_uri_registers_event_loop(monkeypatch, conn, images):
    uri = 'qemu:///embed?root=/var/tmp/x'
    run(monkeypatch, disk.main, args(images, uri=uri))
    assert conn.module.opened == [uri] and conn.module.event_loops == [True]
    run(monkeypatch, disk.main, args(images))
    assert conn.module.event_loops == [True]          # not for qemu:///system


def test_warns_when_queues_exceed_kernel_module_limit(monkeypatch, conn, images):
    monkeypatch.setattr(disk, 'module_facts', lambda: {'parameters': {'max_queues': '8'}})
    warned = run(monkeypatch, disk.main, args(images, queues=16))
    assert any('exceeds max_queues=8' in w for w in warned.get('warnings', []))
    quiet = run(monkeypatch, disk.main, args(images, queues=8))
    assert not any('max_queues' in w for w in quiet.get('warnings', []))


def test_unexpected_libvirt_error_is_reported(monkeypatch, conn, images):
    def broken(flags=0):
        raise fake_libvirt.libvirtError('internal error: connection closed')
    monkeypatch.setattr(conn.domains['vm1'], 'XMLDesc', broken)
    fails(monkeypatch, args(images), 'libvirt error: internal error: connection closed')
