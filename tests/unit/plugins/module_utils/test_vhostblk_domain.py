# SPDX-License-Identifier: GPL-2.0-or-later


import os
import shutil
import subprocess

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import (
    QEMU_NS,
    VhostBlkError,
    boot_orders,
    canonical_xml,
    check_conflicts,
    device_args,
    find_disk,
    format_device,
    make_spec,
    mask_secrets,
    native_disks,
    parse_device,
    parse_xml,
    remove_disk,
    same_disk,
    set_disk,
    split_options,
    to_xml,
    vhostblk_disks,
)
from ansible_collections.vhostblk.fleet.tests.unit.plugins.module_harness import fixture

IMAGES = '/srv/images'


def vm1():
    return parse_xml(fixture('vm1-q35.xml', IMAGES))


def qemu_args(root):
    return [arg.get('value') for arg in root.iter(f'{{{QEMU_NS}}}arg')]


def spec(**kwargs):
    kwargs.setdefault('disk_id', 'vblk0')
    kwargs.setdefault('path', IMAGES + '/vblk0.img')
    return make_spec(**kwargs)


# ---- the device line ------------------------------------------------------

def test_format_device_full_canonical_order():
    line = format_device(spec(queues=4, queue_size=256, serial='SER1', bootindex=2, readonly=True))
    assert line == ('vhost-blk-pci,id=vblk0,drive=/srv/images/vblk0.img,num-queues=4,'
                    'queue-size=256,serial=SER1,bootindex=2,read-only=on')


def test_format_device_minimal_leaves_defaults_out():
    assert format_device(spec()) == 'vhost-blk-pci,id=vblk0,drive=/srv/images/vblk0.img'


def test_device_args_pair():
    assert device_args(spec()) == ['-device', 'vhost-blk-pci,id=vblk0,drive=/srv/images/vblk0.img']


def test_comma_in_path_is_escaped_and_parsed_back():
    disk = spec(path='/srv/a,b.img', serial='X')
    line = format_device(disk)
    assert 'drive=/srv/a,,b.img,serial=X' in line
    parsed = parse_device(line)
    assert parsed['path'] == '/srv/a,b.img'
    assert same_disk(parsed, disk)


def test_split_options():
    assert split_options('a,b=1,,2,c') == ['a', 'b=1,2', 'c']
    assert split_options('a') == ['a']


def test_parse_device_roundtrip_and_foreign():
    disk = spec(queues=2, queue_size=128, bootindex=0, readonly=True)
    assert same_disk(parse_device(format_device(disk)), disk)
    assert parse_device('virtio-blk-pci,id=x,drive=d') is None
    assert parse_device('pvpanic,ioport=0x505') is None


def test_parse_device_any_order_and_extras():
    parsed = parse_device('driver=vhost-blk-pci,num-queues=2,drive=/x,id=d1,num-threads=2')
    assert (parsed['id'], parsed['path'], parsed['queues']) == ('d1', '/x', 2)
    assert parsed['extra'] == {'num-threads': '2'}


# ---- validation -----------------------------------------------------------

@pytest.mark.parametrize('kwargs, words', [
    ({'queues': 0}, 'queues must be between 1 and 16'),
    ({'queues': 17}, 'queues must be between 1 and 16'),
    ({'queue_size': 100}, 'power of two'),
    ({'queue_size': 1}, 'power of two'),
    ({'queue_size': 2}, 'power of two between 4 and 1024'),
    ({'queue_size': 2048}, 'power of two'),
    ({'queue_size': 0}, 'power of two'),
    ({'disk_id': '0bad'}, 'Invalid disk id'),
    ({'disk_id': 'a,b'}, 'Invalid disk id'),
    ({'path': 'relative.img'}, 'must be absolute'),
    ({'path': ''}, 'path is required'),
    ({'serial': 'X' * 21}, 'serial must be 1 to 20 bytes'),
    ({'serial': 'tab\there'}, 'printable ASCII'),
    ({'bootindex': -1}, 'bootindex must not be negative'),
])
def test_validation_errors(kwargs, words):
    with pytest.raises(VhostBlkError, match=words):
        spec(**kwargs)


@pytest.mark.parametrize('queues, queue_size', [(1, 4), (16, 1024), (8, 256)])
def test_validation_limits_accepted(queues, queue_size):
    assert spec(queues=queues, queue_size=queue_size)['queues'] == queues


# ---- reading a domain -----------------------------------------------------

def test_fixture_reading():
    root = vm1()
    assert vhostblk_disks(root) == []
    assert [d['target'] for d in native_disks(root)] == ['vda', 'vdb', 'sda']
    assert native_disks(root)[2]['readonly'] is True
    assert boot_orders(root) == [1]


def test_parse_xml_rejects_garbage():
    with pytest.raises(VhostBlkError, match='Cannot parse domain XML'):
        parse_xml('<domain><name>x</domain>')
    with pytest.raises(VhostBlkError, match='Not a libvirt domain'):
        parse_xml('<network/>')


# ---- changing a domain ----------------------------------------------------

def test_add_keeps_user_args_and_env_order():
    root = vm1()
    assert set_disk(root, spec(queues=4)) == 'added'
    assert qemu_args(root) == ['-fw_cfg', 'name=opt/com.example/role,string=db',
                               '-device', 'pvpanic,ioport=0x505',
                               '-device', 'vhost-blk-pci,id=vblk0,drive=/srv/images/vblk0.img,num-queues=4']
    cmdline = root.find(f'{{{QEMU_NS}}}commandline')
    assert [child.tag.split('}')[1] for child in cmdline] == ['arg'] * 6 + ['env']


def test_add_to_domain_without_qemu_namespace_declares_it():
    root = parse_xml(fixture('vm2-plain.xml', IMAGES))
    set_disk(root, spec())
    text = to_xml(root)
    assert f"xmlns:qemu=\"{QEMU_NS}\"" in text.splitlines()[0]
    assert '<qemu:commandline>' in text
    assert find_disk(parse_xml(text), 'vblk0')['path'] == IMAGES + '/vblk0.img'


def test_second_disk_goes_after_the_first():
    root = vm1()
    set_disk(root, spec())
    set_disk(root, spec(disk_id='vblk1', path='/srv/images/vblk1.img'))
    assert [d['id'] for d in vhostblk_disks(root)] == ['vblk0', 'vblk1']


def test_update_in_place_and_unchanged():
    root = vm1()
    set_disk(root, spec(disk_id='vblk0', queues=2))
    set_disk(root, spec(disk_id='vblk1', path='/srv/images/vblk1.img'))
    before = qemu_args(root)
    assert set_disk(root, spec(disk_id='vblk0', queues=2)) == 'unchanged'
    assert set_disk(root, spec(disk_id='vblk0', queues=8)) == 'updated'
    after = qemu_args(root)
    assert len(after) == len(before)
    assert after[5] == 'vhost-blk-pci,id=vblk0,drive=/srv/images/vblk0.img,num-queues=8'
    assert after[:5] + after[6:] == before[:5] + before[6:]


def test_update_rewrites_hand_written_line_canonically():
    root = vm1()
    cmdline = root.find(f'{{{QEMU_NS}}}commandline')
    cmdline[3].set('value', 'vhost-blk-pci,num-queues=2,drive=/srv/images/vblk0.img,id=vblk0')
    assert find_disk(root, 'vblk0')['queues'] == 2
    assert set_disk(root, spec(queues=2)) == 'updated'
    assert qemu_args(root)[3] == 'vhost-blk-pci,id=vblk0,drive=/srv/images/vblk0.img,num-queues=2'


def test_remove_leaves_user_args_alone():
    root = vm1()
    original = qemu_args(root)
    set_disk(root, spec())
    assert remove_disk(root, 'vblk0') is True
    assert qemu_args(root) == original
    assert root.find(f'{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}env').get('name') == 'QEMU_AUDIO_DRV'
    assert remove_disk(root, 'vblk0') is False


def test_remove_last_arg_drops_empty_commandline():
    root = parse_xml(fixture('vm3-vhostblk.xml', IMAGES))
    assert remove_disk(root, 'data0') is True
    assert root.find(f'{{{QEMU_NS}}}commandline') is None
    assert 'xmlns:qemu' not in to_xml(root)


def test_namespace_and_prefixes_survive_reserialisation():
    root = vm1()
    set_disk(root, spec())
    text = to_xml(root)
    first = text.splitlines()[0]
    assert first.startswith('<domain ') and f'xmlns:qemu="{QEMU_NS}"' in first
    assert '<libosinfo:os id="http://debian.org/debian/12" />' in text
    assert 'ns0:' not in text
    # a second round trip is a fixed point, and the disk reads back the same
    assert canonical_xml(text) == text
    assert find_disk(parse_xml(text), 'vblk0') == find_disk(root, 'vblk0')


def test_canonical_xml_ignores_layout_only():
    one = "<domain type='kvm'><name>a</name>\n   <devices/></domain>"
    two = '<domain type="kvm">\n  <name>a</name>\n  <devices />\n</domain>'
    assert canonical_xml(one) == canonical_xml(two)
    assert canonical_xml(one) != canonical_xml(two.replace('>a<', '>b<'))


def test_text_content_whitespace_is_kept():
    text = '<domain><name>a</name><description>two  spaces\n kept</description></domain>'
    assert 'two  spaces\n kept' in canonical_xml(text)


# ---- conflicts ------------------------------------------------------------

def test_conflict_native_disk_same_domain():
    with pytest.raises(VhostBlkError, match='already used by disk vdb of domain vm1'):
        check_conflicts(vm1(), spec(path=IMAGES + '/vm1-native.img'))


def test_conflict_resolves_paths():
    resolve = {'/srv/link.img': IMAGES + '/vm1-native.img'}.get
    with pytest.raises(VhostBlkError, match='disk vdb'):
        check_conflicts(vm1(), spec(path='/srv/link.img'),
                        resolve=lambda path: resolve(path, path))


def test_conflict_other_vhostblk_id_same_domain():
    root = vm1()
    set_disk(root, spec(disk_id='vblk0'))
    with pytest.raises(VhostBlkError, match='vhost-blk disk vblk0 of domain vm1'):
        check_conflicts(root, spec(disk_id='vblk1'))
    check_conflicts(root, spec(disk_id='vblk0', queues=2))   # itself is no conflict


def test_conflict_other_domains():
    others = [('vm2', parse_xml(fixture('vm2-plain.xml', IMAGES))),
              ('vm3', parse_xml(fixture('vm3-vhostblk.xml', IMAGES)))]
    with pytest.raises(VhostBlkError, match='disk vda of domain vm2'):
        check_conflicts(vm1(), spec(path=IMAGES + '/vm2-root.img'), others)
    with pytest.raises(VhostBlkError, match='vhost-blk disk data0 of domain vm3'):
        check_conflicts(vm1(), spec(path=IMAGES + '/vm3-data.img'), others)


def test_shared_read_only_is_allowed_only_when_both_read_only():
    others = [('vm2', parse_xml(fixture('vm2-plain.xml', IMAGES)))]
    check_conflicts(vm1(), spec(path=IMAGES + '/shared-ro.img', readonly=True), others)
    with pytest.raises(VhostBlkError, match='disk vdb of domain vm2'):
        check_conflicts(vm1(), spec(path=IMAGES + '/shared-ro.img'), others)


def test_conflict_bootindex():
    with pytest.raises(VhostBlkError, match="bootindex 1 is already used by a device with <boot order='1'/>"):
        check_conflicts(vm1(), spec(bootindex=1))
    root = vm1()
    set_disk(root, spec(disk_id='vblk0', bootindex=3))
    with pytest.raises(VhostBlkError, match='bootindex 3 is already used by vhost-blk disk vblk0'):
        check_conflicts(root, spec(disk_id='vblk1', path='/srv/other.img', bootindex=3))
    check_conflicts(root, spec(disk_id='vblk1', path='/srv/other.img', bootindex=4))


def test_mask_secrets():
    assert mask_secrets("<graphics passwd='s3cret' port='1'/>") == "<graphics passwd='********' port='1'/>"
    assert mask_secrets('<graphics passwd="s3cret"/>') == '<graphics passwd="********"/>'


# ---- libvirt's own schema (when libvirt-clients is installed) -----------------

# virt-xml-validate runs xmllint (libxml2-utils): without it every document 'fails' to validate
VALIDATOR = shutil.which('virt-xml-validate') if shutil.which('xmllint') else None


def validate(tmp_path, text):
    path = tmp_path / 'domain.xml'
    path.write_text(text)
    proc = subprocess.run([VALIDATOR, str(path), 'domain'], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    return proc.returncode, proc.stdout


@pytest.mark.skipif(VALIDATOR is None, reason='virt-xml-validate (libvirt-clients) or xmllint (libxml2-utils) missing')
@pytest.mark.parametrize('name', ['vm1-q35.xml', 'vm2-plain.xml', 'vm3-vhostblk.xml'])
def test_results_validate_against_libvirt_schema(tmp_path, name):
    root = parse_xml(fixture(name, IMAGES))
    set_disk(root, spec(queues=4, queue_size=256, serial='S1', bootindex=2, readonly=True))
    added = to_xml(root)
    assert validate(tmp_path, added) == (0, f"{tmp_path / 'domain.xml'} validates\n")
    remove_disk(root, 'vblk0')
    remove_disk(root, 'data0')
    assert validate(tmp_path, to_xml(root))[0] == 0
    # the validator does catch a broken qemu:commandline
    broken = added.replace('<qemu:arg value="-device" />', '<qemu:arg name="-device" />')
    assert validate(tmp_path, broken)[0] != 0


# ---- the patched QEMU --------------------------------------------------------

def test_device_line_accepted_by_patched_qemu(tmp_path, patched_qemu):
    """QEMU parses every property of the line; only opening /dev/vhost-blk may fail here.

    patched_qemu (tests/conftest.py): $VHOSTBLK_QEMU_BIN, else packaging/build_qemu_minimal.py.
    """
    image = tmp_path / 'a,b.img'
    image.write_bytes(b'\0' * 65536)
    line = format_device(spec(path=str(image), queues=2, queue_size=256, bootindex=1, readonly=True))
    firmware = [arg for d in ('/usr/share/qemu', '/usr/share/seabios') if os.path.isdir(d) for arg in ('-L', d)]
    argv = [patched_qemu] + firmware + ['-machine', 'q35', '-accel', 'tcg', '-nodefaults', '-display', 'none',
                                        '-S', '-device', line]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return          # the device realized (module loaded) and QEMU sat waiting under -S
    assert 'cannot open /dev/vhost-blk' in proc.stdout, proc.stdout
    bogus = subprocess.run(argv[:-1] + [line + ',bogus=1'], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=20, check=False)
    assert "Property 'vhost-blk-pci.bogus' not found" in bogus.stdout
