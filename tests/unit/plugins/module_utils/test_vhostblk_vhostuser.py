# SPDX-License-Identifier: GPL-2.0-or-later

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_vhostuser as vu
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import (
    VhostBlkError,
    parse_xml,
    path_users,
    to_xml,
)

DOMAIN = """<domain type='kvm'><name>vm1</name>{memory}<memory unit='KiB'>1048576</memory>
<devices>
  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/srv/a.img'/>
    <target dev='vda' bus='virtio'/><serial>A1</serial><boot order='1'/>
    <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>
  <disk type='file' device='cdrom'><source file='/srv/x.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
</devices></domain>"""


def domain(memory=''):
    return parse_xml(DOMAIN.format(memory=memory))


def spec(**kwargs):
    base = {'target': 'vdb', 'instance': 'vm1-d', 'socket': '/run/vhost-blk/vm1-d.sock'}
    base.update(kwargs)
    return vu.make_spec('d', base.pop('path', '/srv/b.img'), **base)


@pytest.mark.parametrize('memory, before, after', [
    ('', None, ('memfd', 'shared')),
    ("<memoryBacking><hugepages/></memoryBacking>", ('hugepages',), ('memfd', 'shared')),
    ("<memoryBacking><source type='anonymous'/></memoryBacking>", None, ('memfd', 'shared')),
    ("<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>", None, ('file', 'shared')),
])
def test_shared_memory(memory, before, after):
    root = domain(memory)
    vu.ensure_shared_memory(root)
    backing = root.find('memoryBacking')
    assert (backing.find('source').get('type'), backing.find('access').get('mode')) == after
    if before:
        assert backing.find('hugepages') is not None and list(backing)[0].tag == 'hugepages'
    assert vu.has_shared_memory(root) and vu.ensure_shared_memory(root) is None


def test_shared_memory_released_only_when_added_and_unused():
    root = domain()
    assert vu.ensure_shared_memory(root) == 'added'
    vu.set_disk(root, spec())
    vu.set_record(root, spec())
    assert vu.release_shared_memory(root) is False          # our record is still there
    vu.remove_disk(root, 'd')
    assert vu.release_shared_memory(root) is True
    assert root.find('memoryBacking') is None and root.find('metadata') is None
    kept = domain("<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>")
    assert vu.ensure_shared_memory(kept) is None and vu.release_shared_memory(kept) is False


def test_set_disk_is_idempotent_and_updates_in_place():
    root = domain()
    assert vu.set_disk(root, spec(queues=2, bootindex=3)) == 'added'
    elem = vu.find_element(root, 'd')
    elem.set('snapshot', 'no')                               # libvirt adds it
    assert vu.set_disk(root, spec(queues=2, bootindex=3)) == 'unchanged'
    assert vu.set_disk(root, spec(queues=4, bootindex=3)) == 'updated'
    assert vu.disk_view(vu.find_element(root, 'd'))['queues'] == '4'
    assert [d.find('target').get('dev') for d in root.findall('./devices/disk')] == ['vda', 'sda', 'vdb']


def test_metadata_round_trip_and_path_users():
    root = domain()
    original = vu.convertible(root, 'vda')
    assert (original['path'], original['serial'], original['bootindex']) == ('/srv/a.img', 'A1', 1)
    conv = spec(path='/srv/a.img', target='vda', bootindex=1)
    vu.set_disk(root, conv, original['element'])
    assert vu.set_record(root, conv, original['element']) is True
    root = parse_xml(to_xml(root))
    assert vu.set_record(root, conv, vu.find_record(root, 'd')['original']) is False
    users = path_users(root)
    assert {'domain': 'vm1', 'what': 'vhost-user disk', 'id': 'd', 'path': '/srv/a.img', 'readonly': False} in users
    assert vu.find_element(root, 'd').find('address').get('bus') == '0x04'
    removed, restored = vu.remove_disk(root, 'd')
    assert removed and restored == 'vda'
    assert vu.find_target(root, 'vda').get('type') == 'file' and vu.records(root) == []


@pytest.mark.parametrize('target, words', [
    ('vdz', 'has no disk with target vdz'),
    ('sda', 'is a file cdrom'),
])
def test_convertible_refuses(target, words):
    with pytest.raises(VhostBlkError, match=words):
        vu.convertible(domain(), target)


def test_conflicts():
    root = domain()
    with pytest.raises(VhostBlkError, match='target vda is already used by a file disk'):
        vu.check_conflicts(root, spec(target='vda'))
    with pytest.raises(VhostBlkError, match="<boot order='1'/>"):
        vu.check_conflicts(root, spec(bootindex=1))
    vu.check_conflicts(root, spec(target='vda', bootindex=1), vu.find_target(root, 'vda'))
    other = domain()
    vu.set_disk(other, spec(target='vdc'))
    with pytest.raises(VhostBlkError, match='socket /run/vhost-blk/vm1-d.sock is already used by disk vdc'):
        vu.check_socket_elsewhere(spec(), [('vm2', other)])


@pytest.mark.parametrize('bad, words', [
    ({'target': 'hda'}, 'Invalid target'),
    ({'target': 'vd1'}, 'Invalid target'),
    ({'serial': 'a b'}, 'white space'),
    ({'queues': 17}, 'queues must be between'),
])
def test_bad_spec(bad, words):
    with pytest.raises(VhostBlkError, match=words):
        spec(**bad)


def test_free_target():
    assert vu.free_target(domain()) == 'vdb'


def test_live_plan():
    live = domain()
    want = spec()
    assert [(op, e.find('target').get('dev')) for op, e in vu.live_plan(live, want, None, True)] == \
        [('attach', 'vdb')]
    vu.set_disk(live, want)
    assert vu.live_plan(live, want, None, True) == []
    changed = spec(queues=4)
    assert [op for op, dummy in vu.live_plan(live, changed, None, True)] == ['detach', 'attach']
    assert [op for op, dummy in vu.live_plan(live, {'id': 'd'}, None, False)] == ['detach']
    assert vu.live_plan(domain(), {'id': 'd'}, None, False) == []


def test_live_plan_keeps_the_guest_slot():
    live = domain()
    plan = vu.live_plan(live, spec(target='vda'), None, True, converting_target='vda')
    assert [(op, e.get('type')) for op, e in plan] == [('detach', 'file'), ('attach', 'vhostuser')]
    assert plan[1][1].find('address').get('bus') == '0x04'
