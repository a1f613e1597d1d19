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

import ansible
import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import canonical_xml
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


def disk(world, check_mode=False, diff=False, **params):
    base = {'name': 'vm1', 'id': 'vblk0', 'path': os.path.join(world['images'], 'vblk0.img'),
            'uri': world['uri'], 'check_device': False, 'manage_ownership': False}
    base.update(params)
    base.update({'_ansible_check_mode': check_mode, '_ansible_diff': diff})
    args = os.path.join(world['top'], 'args.json')
    with open(args, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': base}, handle)
    os.chmod(args, 0o644)
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
