# SPDX-License-Identifier: GPL-2.0-or-later
"""The disk module against real libvirt: the embedded QEMU driver (qemu:///embed).

This checks what the fake cannot: that libvirt accepts the XML the module writes,
keeps the qemu:commandline through its own normalisation (what ``virsh edit``
shows), and that a second run after libvirt's re-formatting changes nothing.

Needs the Debian packages python3-libvirt and libvirt-daemon-driver-qemu (and a
qemu-system-x86_64); skipped otherwise.  The module runs as a script under the
system Python; as root it runs as ``nobody`` (libvirt's privileged embedded mode
wants the libvirt-qemu user to exist).
"""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import ansible
import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import canonical_xml
from ansible_collections.vhostblk.fleet.tests.unit.plugins import fake_systemctl
from ansible_collections.vhostblk.fleet.tests.unit.plugins.module_harness import fixture

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SYSTEM_PYTHON = '/usr/bin/python3'
QEMU_DRIVER = '/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so'


def _usable():
    if not (os.path.exists(QEMU_DRIVER) and os.path.exists(SYSTEM_PYTHON)
            and shutil.which('qemu-system-x86_64')):
        return False
    if os.getuid() == 0 and not shutil.which('setpriv'):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, '-c', 'import libvirt'], capture_output=True, check=False)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _usable(), reason='python3-libvirt / libvirt-daemon-driver-qemu not installed')


@pytest.fixture
def world():
    """A world-readable temp tree: collection, module_utils of ansible, images, libvirt root."""
    top = tempfile.mkdtemp(prefix='vhostblk-embed-')
    os.chmod(top, 0o755)
    try:
        fleet = os.path.join(top, 'lib', 'ansible_collections', 'vhostblk', 'fleet')
        shutil.copytree(os.path.join(REPO, 'plugins'), os.path.join(fleet, 'plugins'),
                        ignore=shutil.ignore_patterns('__pycache__'))
        anspkg = os.path.join(top, 'lib', 'ansible')
        shutil.copytree(os.path.join(os.path.dirname(ansible.__file__), 'module_utils'),
                        os.path.join(anspkg, 'module_utils'), ignore=shutil.ignore_patterns('__pycache__'))
        with open(os.path.join(anspkg, '__init__.py'), 'w'):
            pass
        images = os.path.join(top, 'images')
        os.makedirs(images)
        for name in ('vm1-native.img', 'vblk0.img', 'vblk1.img'):
            with open(os.path.join(images, name), 'wb') as handle:
                handle.truncate(1 << 20)
        state = os.path.join(top, 'libvirt')
        os.makedirs(state)
        if os.getuid() == 0:
            nobody = pwd.getpwnam('nobody')
            for path in [state, images] + [os.path.join(images, n) for n in os.listdir(images)]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        yield {'top': top, 'lib': os.path.join(top, 'lib'), 'images': images, 'state': state,
               'uri': 'qemu:///embed?root=' + state, 'fleet': fleet}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _system_python(world, argv, stdin=None):
    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': world['state'], 'LANG': 'C.UTF-8',
           'PYTHONPATH': world['lib'], 'PYTHONDONTWRITEBYTECODE': '1', 'LIBVIRT_DEBUG': '4'}
    prefix = []
    if os.getuid() == 0:
        nobody = pwd.getpwnam('nobody')
        prefix = ['setpriv', f'--reuid={nobody.pw_uid}', f'--regid={nobody.pw_gid}', '--clear-groups']
    return subprocess.run(prefix + [SYSTEM_PYTHON] + argv, input=stdin, capture_output=True, text=True,
                          env=env, cwd=world['top'], timeout=120, check=False)


DEFINE = '''
import sys, libvirt
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])
conn.defineXML(sys.stdin.read())
'''

DUMP = '''
import sys, libvirt
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])
print(conn.lookupByName(sys.argv[2]).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
'''


def define(world, name):
    xml = fixture(name, world['images']).replace("type='kvm'", "type='qemu'", 1)
    proc = _system_python(world, ['-c', DEFINE, world['uri']], stdin=xml)
    assert proc.returncode == 0, proc.stderr


def dump(world, name='vm1'):
    proc = _system_python(world, ['-c', DUMP, world['uri'], name])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _module_args(world, base, params, check_mode, diff):
    """Write the module's arguments (base, overridden by params) where the system python reads them."""
    args_json = dict(base, **params, _ansible_check_mode=check_mode, _ansible_diff=diff)
    args = os.path.join(world['top'], 'args.json')
    with open(args, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args_json}, handle)
    os.chmod(args, 0o644)
    return args


def disk(world, check_mode=False, diff=False, **params):
    base = {'name': 'vm1', 'id': 'vblk0', 'path': os.path.join(world['images'], 'vblk0.img'),
            'uri': world['uri'], 'check_device': False, 'manage_ownership': False, 'transport': 'qemu-device'}
    args = _module_args(world, base, params, check_mode, diff)
    proc = _system_python(world, [os.path.join(world['fleet'], 'plugins', 'modules', 'disk.py'), args])
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f'no JSON from the module: {proc.stdout!r} {proc.stderr!r}') from None


def test_real_libvirt_lifecycle(world):
    define(world, 'vm1-q35.xml')
    original = dump(world)

    planned = disk(world, check_mode=True, diff=True, queues=4)
    assert planned['changed'] is True and dump(world) == original

    added = disk(world, queues=4, queue_size=256, bootindex=5)
    assert added['changed'] is True and added['action'] == 'added', added
    stored = dump(world)
    first = stored.splitlines()[0]
    assert "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'" in first
    image = os.path.join(world['images'], 'vblk0.img')
    assert f"<qemu:arg value='vhost-blk-pci,id=vblk0,drive={image},num-queues=4,queue-size=256,bootindex=5'/>" \
        in stored
    assert "<qemu:arg value='pvpanic,ioport=0x505'/>" in stored

    again = disk(world, queues=4, queue_size=256, bootindex=5)
    assert again['changed'] is False and again['action'] == 'unchanged', again
    checked = disk(world, check_mode=True, queues=4, queue_size=256, bootindex=5)
    assert checked['changed'] is False
    assert dump(world) == stored

    updated = disk(world, diff=True, queues=8, queue_size=256, bootindex=5)
    assert updated['changed'] is True and updated['action'] == 'updated'
    assert 'num-queues=8' in dump(world)

    second = disk(world, id='vblk1', path=os.path.join(world['images'], 'vblk1.img'))
    assert second['action'] == 'added'
    clash = disk(world, id='vblk2', path=os.path.join(world['images'], 'vm1-native.img'))
    assert clash.get('failed') and 'already used by disk vdb of domain vm1' in clash['msg']

    removed = disk(world, state='absent')
    assert removed['changed'] is True
    removed = disk(world, id='vblk1', state='absent')
    assert removed['changed'] is True
    # Semantically back where it started.  Textually libvirt now declares the libosinfo
    # namespace on <metadata> instead of on its own element: ElementTree writes every
    # namespace declaration on <domain>, and libvirt keeps the nearest one it copies.
    assert canonical_xml(dump(world)) == canonical_xml(original)
    assert disk(world, id='vblk1', state='absent')['changed'] is False


def test_real_libvirt_missing_domain(world):
    result = disk(world, name='nope')
    assert result.get('failed') and 'Domain nope not found' in result['msg']


# ---- transport vhost-user -------------------------------------------------------

RUN_VHOST_USER = '''
import sys
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_backend_service as svc
svc.DEFAULT_ROOT, svc.DEFAULT_SYSTEMCTL = sys.argv[2], sys.argv[3]
from ansible_collections.vhostblk.fleet.plugins.modules import disk
sys.argv = [sys.argv[0], sys.argv[1]]
disk.main()
'''


@pytest.fixture
def host(world):
    """A fake host root for the back-end service (conf dir, unit template) and a fake systemctl."""
    root = os.path.join(world['top'], 'host')
    units = os.path.join(root, 'lib', 'systemd', 'system')
    os.makedirs(units)
    shutil.copy(os.path.join(REPO, 'packaging', 'files', 'vhost-blk-user@.service'), units)
    state = os.path.join(world['top'], 'systemd')
    systemctl = fake_systemctl.write(os.path.join(world['top'], 'systemctl'), state)
    if os.getuid() == 0:
        nobody = pwd.getpwnam('nobody')
        for path in (root, state):
            for top, dirs, files in os.walk(path):
                for name in [top] + [os.path.join(top, n) for n in dirs + files]:
                    os.chown(name, nobody.pw_uid, nobody.pw_gid)
    world.update({'host': root, 'systemd': state, 'systemctl': systemctl,
                  'conf': os.path.join(root, 'etc', 'vhost-blk', 'user')})
    return world


def vu_disk(world, check_mode=False, diff=False, **params):
    base = {'name': 'vm1', 'id': 'vblk0', 'path': os.path.join(world['images'], 'vblk0.img'),
            'uri': world['uri'], 'check_device': False, 'manage_ownership': False}
    args = _module_args(world, base, params, check_mode, diff)
    proc = _system_python(world, ['-c', RUN_VHOST_USER, args, world['host'], world['systemctl']])
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f'no JSON from the module: {proc.stdout!r} {proc.stderr!r}') from None


def read_conf(world, instance='vm1-vblk0'):
    path = os.path.join(world['conf'], instance + '.conf')
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def element(xml_text, target):
    for disk_elem in ET.fromstring(xml_text).findall('./devices/disk'):
        if disk_elem.find('target').get('dev') == target:
            return disk_elem
    return None


def test_vhost_user_lifecycle(host):
    world = host
    define(world, 'vm1-q35.xml')
    original = dump(world)
    image = os.path.join(world['images'], 'vblk0.img')

    planned = vu_disk(world, check_mode=True, diff=True, queues=4, bootindex=5, serial='VM1DATA')
    assert planned['changed'] is True and planned['action'] == 'added', planned
    assert dump(world) == original and read_conf(world) is None
    assert fake_systemctl.mutating(world['systemd']) == []
    assert [d['after_header'] for d in planned['diff']] == [
        'vm1 (persistent definition)', os.path.join(world['conf'], 'vm1-vblk0.conf')]
    assert 'type="vhostuser"' not in planned['diff'][0]['before']
    assert 'type="vhostuser"' in planned['diff'][0]['after']
    assert planned['diff'][1]['before'] == ''

    added = vu_disk(world, queues=4, bootindex=5, serial='VM1DATA')
    assert added['changed'] is True and added['action'] == 'added', added
    assert added['transport'] == 'vhost-user' and added['restart_required'] is False
    assert added['disk']['target'] == 'vdc'             # vda, vdb and sda are taken
    assert added['service'] == {
        'instance': 'vm1-vblk0', 'unit': 'vhost-blk-user@vm1-vblk0.service',
        'socket': '/run/vhost-blk/vm1-vblk0.sock', 'conf': os.path.join(world['conf'], 'vm1-vblk0.conf'),
        'actions': ['write', 'enable', 'start']}
    stored = dump(world)
    ours = element(stored, 'vdc')
    assert ours.get('type') == 'vhostuser' and ours.get('device') == 'disk'
    assert ours.find('driver').attrib == {'name': 'qemu', 'type': 'raw', 'queues': '4'}
    assert ours.find('source').attrib == {'type': 'unix', 'path': '/run/vhost-blk/vm1-vblk0.sock'}
    assert ours.find('source/reconnect').attrib == {'enabled': 'yes', 'timeout': '10'}
    assert ours.find('target').attrib == {'dev': 'vdc', 'bus': 'virtio'}
    assert ours.find('boot').get('order') == '5' and ours.find('alias').get('name') == 'ua-vblk0'
    assert ours.find('serial') is None and ours.find('readonly') is None
    backing = ET.fromstring(stored).find('memoryBacking')
    assert backing.find('source').get('type') == 'memfd' and backing.find('access').get('mode') == 'shared'
    assert f'path="{image}"' in stored and 'vhostblk:disk id="vblk0" instance="vm1-vblk0"' in stored
    assert read_conf(world) == (f'# managed by vhostblk.fleet.disk: domain=vm1 id=vblk0\n'
                                f'BACKING={image}\nOPTIONS="--serial VM1DATA --queues 4"\n')
    assert fake_systemctl.mutating(world['systemd']) == ['enable --now vhost-blk-user@vm1-vblk0.service']

    again = vu_disk(world, queues=4, bootindex=5, serial='VM1DATA')
    assert again['changed'] is False and again['action'] == 'unchanged', again
    assert again['service']['actions'] == [] and again['disk']['target'] == 'vdc'
    checked = vu_disk(world, check_mode=True, diff=True, queues=4, bootindex=5, serial='VM1DATA')
    assert checked['changed'] is False and 'diff' not in checked
    assert dump(world) == stored and len(fake_systemctl.mutating(world['systemd'])) == 1

    updated = vu_disk(world, diff=True, queues=2, bootindex=5, readonly=True, cache='writeback')
    assert updated['changed'] is True and updated['action'] == 'updated', updated
    assert updated['service']['actions'] == ['write', 'restart']
    assert element(dump(world), 'vdc').find('driver').get('queues') == '2'
    assert element(dump(world), 'vdc').find('address').attrib == ours.find('address').attrib
    assert 'OPTIONS="--queues 2 --readonly --cache writeback"' in read_conf(world)
    assert fake_systemctl.mutating(world['systemd'])[-1] == 'restart vhost-blk-user@vm1-vblk0.service'
    assert {d['before_header'] for d in updated['diff']} == {
        'vm1 (persistent definition)', os.path.join(world['conf'], 'vm1-vblk0.conf')}

    removed = vu_disk(world, state='absent', diff=True)
    assert removed['changed'] is True and removed['action'] == 'removed', removed
    assert removed['service']['actions'] == ['stop', 'disable', 'remove']
    assert fake_systemctl.mutating(world['systemd'])[-1] == 'disable --now vhost-blk-user@vm1-vblk0.service'
    assert read_conf(world) is None
    # memoryBacking and our metadata were added by the module: they go with the last disk
    assert canonical_xml(dump(world)) == canonical_xml(original)
    gone = vu_disk(world, state='absent')
    assert gone['changed'] is False and gone['action'] == 'unchanged'


def test_vhost_user_convert_and_restore(host):
    world = host
    define(world, 'vm1-q35.xml')
    original = dump(world)
    native = element(original, 'vdb')
    native_image = os.path.join(world['images'], 'vm1-native.img')

    planned = vu_disk(world, check_mode=True, id='data', path=None, convert_from='vdb')
    assert planned['changed'] is True and dump(world) == original
    converted = vu_disk(world, id='data', path=None, convert_from='vdb', serial='NATIVE1')
    assert converted['changed'] is True and converted['action'] == 'added', converted
    assert converted['disk']['path'] == native_image and converted['disk']['target'] == 'vdb'
    stored = dump(world)
    ours = element(stored, 'vdb')
    assert ours.get('type') == 'vhostuser' and ours.find('alias').get('name') == 'ua-data'
    assert ours.find('address').attrib == native.find('address').attrib     # same PCI slot for the guest
    assert f"<source file='{native_image}'/>" not in stored
    assert '<vhostblk:original>' in stored and f'<source file="{native_image}"/>' in stored
    assert f'BACKING={native_image}\n' in read_conf(world, 'vm1-data')

    again = vu_disk(world, id='data', path=None, convert_from='vdb', serial='NATIVE1')
    assert again['changed'] is False, again
    # the path of the converted disk is in use now: by the vhost-user disk
    clash = vu_disk(world, id='other', path=native_image)
    assert clash.get('failed') and 'already used by vhost-user disk data of domain vm1' in clash['msg']
    other = vu_disk(world, id='other', convert_from='vdc', path=None)
    assert other.get('failed') and 'took over no native disk' not in other['msg']
    assert 'has no disk with target vdc' in other['msg']
    twice = vu_disk(world, id='data', path=None, convert_from='vdc')
    assert twice.get('failed') and 'took over disk vdb already' in twice['msg']

    restored = vu_disk(world, id='data', state='absent')
    assert restored['changed'] is True and 'native disk vdb put back' in restored['msg'], restored
    assert read_conf(world, 'vm1-data') is None
    assert canonical_xml(dump(world)) == canonical_xml(original)
    assert vu_disk(world, id='data', state='absent')['changed'] is False


def test_vhost_user_replace_with_native(host):
    """Removal as playbooks/remove.yml does it: libvirt takes the native virtio-blk disk that
    takes the vhost-user disk's place (same backing, target, PCI slot, boot order, serial)."""
    world = host
    define(world, 'vm1-q35.xml')
    image = os.path.join(world['images'], 'vblk0.img')
    vu_disk(world, bootindex=5, serial='VM1DATA')
    ours = element(dump(world), 'vdc')
    given = vu_disk(world, state='absent', replace_with_native=True)
    assert given['changed'] is True and 'native disk vdc put back' in given['msg'], given
    native = element(dump(world), 'vdc')
    assert native.get('type') == 'file' and native.find('source').get('file') == image
    assert native.find('driver').attrib == {'name': 'qemu', 'type': 'raw', 'cache': 'none', 'io': 'native'}
    assert native.find('serial').text == 'VM1DATA' and native.find('boot').get('order') == '5'
    assert native.find('address').attrib == ours.find('address').attrib
    assert 'vhostblk:disk' not in dump(world) and read_conf(world) is None
    assert vu_disk(world, state='absent', replace_with_native=True)['changed'] is False


@pytest.mark.parametrize('params, words', [
    ({'target': 'sdb'}, "Invalid target 'sdb'"),
    ({'target': 'vdb'}, 'target vdb is already used by a file disk of domain vm1'),
    ({'convert_from': 'vdz', 'path': None}, 'convert_from: domain vm1 has no disk with target vdz'),
    ({'convert_from': 'vda', 'path': None}, 'is a qcow2 image'),
    ({'convert_from': 'sda', 'path': None}, 'is a file cdrom'),
    ({'convert_from': 'vdb'}, 'differs from the source'),
    ({'path': '@IMAGES@/vm1-native.img'}, 'already used by disk vdb of domain vm1'),
    ({'bootindex': 1}, "<boot order='1'/>"),
    ({'serial': 'two words'}, 'must not hold white space'),
    ({'instance': '-bad'}, "Invalid instance name '-bad'"),
    ({'live': True, 'transport': 'qemu-device'}, 'live=true needs transport vhost-user'),
    ({'target': 'vdd', 'transport': 'qemu-device'}, 'target applies to transport vhost-user only'),
    ({'state': 'absent', 'transport': 'qemu-device', 'replace_with_native': True},
     'replace_with_native applies to transport vhost-user only'),
    ({'path': None}, 'path (or convert_from) is required'),
])
def test_vhost_user_bad_input(host, params, words):
    world = host
    define(world, 'vm1-q35.xml')
    original = dump(world)
    params = dict((key, value.replace('@IMAGES@', world['images']) if isinstance(value, str) else value)
                  for key, value in params.items())
    result = vu_disk(world, **params)
    assert result.get('failed') and words in result['msg'], result
    assert dump(world) == original and fake_systemctl.mutating(world['systemd']) == []


def test_vhost_user_conf_of_someone_else(host):
    world = host
    define(world, 'vm1-q35.xml')
    os.makedirs(world['conf'])
    with open(os.path.join(world['conf'], 'vm1-vblk0.conf'), 'w') as handle:
        handle.write('BACKING=/srv/other.img\n')
    if os.getuid() == 0:
        nobody = pwd.getpwnam('nobody')
        for path in (os.path.dirname(world['conf']), world['conf']):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    result = vu_disk(world)
    assert result.get('failed') and 'belongs to someone else' in result['msg'], result
    named = vu_disk(world, instance='vm1-data-disk')
    assert named['changed'] is True and named['disk']['socket'] == '/run/vhost-blk/vm1-data-disk.sock'
    # absent leaves a conf file it did not write alone
    assert vu_disk(world, state='absent', instance='vm1-vblk0')['service']['actions'] == []


def test_vhost_user_service_missing_or_failing(host):
    world = host
    define(world, 'vm1-q35.xml')
    with open(os.path.join(world['systemd'], 'fail'), 'w') as handle:
        handle.write('enable')
    failed = vu_disk(world)
    assert failed.get('failed') and 'systemctl enable --now vhost-blk-user@vm1-vblk0.service failed' in failed['msg']
    assert 'journalctl -u vhost-blk-user@vm1-vblk0.service' in failed['msg']
    os.unlink(os.path.join(world['host'], 'lib', 'systemd', 'system', 'vhost-blk-user@.service'))
    missing = vu_disk(world, id='vblk1', path=os.path.join(world['images'], 'vblk1.img'))
    assert missing.get('failed') and 'install vhost-blk-tools' in missing['msg']
    unmanaged = vu_disk(world, id='vblk1', path=os.path.join(world['images'], 'vblk1.img'), manage_service=False)
    assert unmanaged['changed'] is True and unmanaged['service']['actions'] == []
