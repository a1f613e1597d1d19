# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""libvirt domain XML handling for vhost-blk disks (pure functions, no libvirt).

libvirt has no vhost-blk disk type, so a disk is expressed as one pair of QEMU
pass-through arguments in the QEMU namespace of the domain:

    <domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
      ...
      <qemu:commandline>
        <qemu:arg value='-device'/>
        <qemu:arg value='vhost-blk-pci,id=vblk0,drive=/srv/a.img,num-queues=4'/>
      </qemu:commandline>
    </domain>

A disk is identified by its QEMU id.  Updating a disk rewrites exactly its pair
in place; removing it removes exactly its pair; every other argument of the
user stays untouched and in order.
"""


import io
import re
import xml.etree.ElementTree as ET

QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0'
QEMU_PREFIX = 'qemu'
# Our own <metadata> namespace: what libvirt cannot hold of vhost-user disks
# (see vhostblk_vhostuser).  Never change it: definitions out there carry it.
META_NS = 'http://vhostblk.fleet/xmlns/libvirt/domain/1.0'
META_PREFIX = 'vhostblk'
DEVICE_DRIVER = 'vhost-blk-pci'
DEVICE_OPTION = '-device'

MAX_QUEUES = 16
MIN_QUEUE_SIZE = 4               # the vhost-blk-pci device needs seg_max = size - 2 >= 2
MAX_QUEUE_SIZE = 1024
SERIAL_MAX_BYTES = 20          # VIRTIO_BLK_ID_BYTES
# vhost-blk ABI 1 has no ioctl to hand a serial to the kernel, so the vhost-blk-pci device
# refuses one. The device line can carry it; set True once the ABI and the device do.
SERIAL_SUPPORTED = False
ID_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]{0,127}$')

# spec key -> device property, in the canonical order of the device line.
PROPERTIES = (
    ('id', 'id'),
    ('path', 'drive'),
    ('queues', 'num-queues'),
    ('queue_size', 'queue-size'),
    ('serial', 'serial'),
    ('bootindex', 'bootindex'),
    ('readonly', 'read-only'),
)
SPEC_KEYS = tuple(key for key, dummy in PROPERTIES)

_CMDLINE = f'{{{QEMU_NS}}}commandline'
_ARG = f'{{{QEMU_NS}}}arg'

ET.register_namespace(QEMU_PREFIX, QEMU_NS)
ET.register_namespace(META_PREFIX, META_NS)


class VhostBlkError(Exception):
    """A problem the caller should report to the user as it is."""


# --------------------------------------------------------------------------
# disk specification and the device line
# --------------------------------------------------------------------------

def make_spec(disk_id, path, *, queues=None, queue_size=None, serial=None,
              readonly=False, bootindex=None):
    """Build a validated disk spec dict (raises VhostBlkError)."""
    spec = {
        'id': disk_id, 'path': path, 'queues': queues, 'queue_size': queue_size,
        'serial': serial, 'readonly': bool(readonly), 'bootindex': bootindex,
    }
    validate_spec(spec)
    return spec


def validate_spec(spec):
    """Raise VhostBlkError naming the first bad value of ``spec``."""
    disk_id, path = spec.get('id'), spec.get('path')
    if not disk_id or not ID_RE.match(disk_id):
        raise VhostBlkError(
            f"Invalid disk id {disk_id!r}: it must start with a letter and hold only letters, "
            "digits, '-', '.' and '_' (QEMU id rules)")
    if not path:
        raise VhostBlkError(f'A path is required for disk {disk_id}')
    if not path.startswith('/'):
        raise VhostBlkError(f'The path {path!r} of disk {disk_id} must be absolute')
    queues = spec.get('queues')
    if queues is not None and not 1 <= queues <= MAX_QUEUES:
        raise VhostBlkError(f'queues must be between 1 and {MAX_QUEUES}, got {queues}')
    size = spec.get('queue_size')
    if size is not None and (not MIN_QUEUE_SIZE <= size <= MAX_QUEUE_SIZE or size & (size - 1)):
        raise VhostBlkError(f'queue_size must be a power of two between {MIN_QUEUE_SIZE} and '
                            f'{MAX_QUEUE_SIZE}, got {size}')
    serial = spec.get('serial')
    if serial is not None:
        if not serial or len(serial.encode('utf-8')) > SERIAL_MAX_BYTES:
            raise VhostBlkError(f'serial must be 1 to {SERIAL_MAX_BYTES} bytes long, got {serial!r}')
        if not all(' ' <= ch <= '~' for ch in serial):
            raise VhostBlkError(f'serial must be printable ASCII, got {serial!r}')
    bootindex = spec.get('bootindex')
    if bootindex is not None and bootindex < 0:
        raise VhostBlkError(f'bootindex must not be negative, got {bootindex}')


def _escape(value):
    """QEMU option syntax: a comma inside a value is written twice."""
    return value.replace(',', ',,')


def format_device(spec):
    """THE device line of a disk.  The one place that knows its shape.

    vhost-blk-pci,id=ID,drive=PATH[,num-queues=N][,queue-size=Q][,serial=S]
    [,bootindex=B][,read-only=on]
    """
    parts = [DEVICE_DRIVER]
    for key, prop in PROPERTIES:
        value = spec.get(key)
        if value is None or value is False:
            continue
        if value is True:
            value = 'on'
        parts.append(f'{prop}={_escape(str(value))}')
    return ','.join(parts)


def device_args(spec):
    """The qemu:arg values of a disk, in order."""
    return [DEVICE_OPTION, format_device(spec)]


def split_options(value):
    """Split a QEMU option string at single commas (',,' is a literal comma)."""
    fields = []
    current = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == ',':
            if value[i + 1:i + 2] == ',':
                current.append(',')
                i += 2
                continue
            fields.append(''.join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    fields.append(''.join(current))
    return fields


def parse_device(value):
    """Parse a device line into a spec dict, or None if it is no vhost-blk device.

    Unknown properties are kept under the key 'extra' (a dict).
    """
    fields = split_options(value)
    driver = fields[0]
    if driver.startswith('driver='):
        driver = driver[len('driver='):]
    if driver != DEVICE_DRIVER:
        return None
    spec = dict((key, None) for key in SPEC_KEYS)
    spec['readonly'] = False
    spec['extra'] = {}
    by_prop = dict((prop, key) for key, prop in PROPERTIES)
    for field in fields[1:]:
        name, sep, val = field.partition('=')
        key = by_prop.get(name)
        if key is None:
            spec['extra'][name] = val if sep else None
        elif key in ('queues', 'queue_size', 'bootindex'):
            try:
                spec[key] = int(val, 0)
            except ValueError:
                spec['extra'][name] = val
        elif key == 'readonly':
            spec[key] = val in ('on', 'true', 'yes', 'y', '1')
        else:
            spec[key] = val
    return spec


def same_disk(left, right):
    """True if two spec dicts describe the same device (ignores unknown extras)."""
    if left is None or right is None:
        return left is None and right is None
    return all(left.get(key) == right.get(key) for key in SPEC_KEYS)


# --------------------------------------------------------------------------
# XML in and out
# --------------------------------------------------------------------------

def parse_xml(xml_text):
    """Parse domain XML and register its namespace prefixes for serialisation.

    ElementTree forgets prefixes; registering the document's own ones keeps
    e.g. libosinfo metadata written with its usual prefix instead of ns0.
    """
    if isinstance(xml_text, bytes):
        xml_text = xml_text.decode('utf-8')
    try:
        for _dummy, (prefix, uri) in ET.iterparse(io.StringIO(xml_text), events=('start-ns',)):
            if prefix and not re.match(r'^ns\d+$', prefix) and uri not in (QEMU_NS, META_NS):
                ET.register_namespace(prefix, uri)
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise VhostBlkError(f'Cannot parse domain XML: {exc}') from exc
    if root.tag != 'domain':
        raise VhostBlkError(f'Not a libvirt domain XML document (root element is {root.tag})')
    return root


def _strip_whitespace(elem):
    if len(elem):
        if elem.text is not None and not elem.text.strip():
            elem.text = None
        for child in elem:
            if child.tail is not None and not child.tail.strip():
                child.tail = None
            _strip_whitespace(child)


def _indent(elem, level=0):
    pad = '\n' + '  ' * level
    if len(elem):
        if not elem.text:
            elem.text = pad + '  '
        for child in elem:
            _indent(child, level + 1)
            if not child.tail:
                child.tail = pad + '  '
        last = elem[-1]
        if last.tail == pad + '  ':
            last.tail = pad


def to_xml(root):
    """Serialise a domain tree in one canonical layout (two-space indent)."""
    _strip_whitespace(root)
    _indent(root)
    root.tail = None
    return ET.tostring(root, encoding='unicode') + '\n'


def canonical_xml(xml_text):
    """Re-serialise XML text so that two texts can be compared."""
    return to_xml(parse_xml(xml_text))


def domain_name(root):
    name = root.find('name')
    return name.text if name is not None else None


# --------------------------------------------------------------------------
# reading disks out of a domain
# --------------------------------------------------------------------------

def _device_pairs(root):
    """Yield (commandline, index, spec) for each vhost-blk -device pair."""
    for cmdline in root.findall(_CMDLINE):
        args = list(cmdline)
        for index, arg in enumerate(args[:-1]):
            if arg.tag != _ARG or arg.get('value') != DEVICE_OPTION:
                continue
            nxt = args[index + 1]
            if nxt.tag != _ARG:
                continue
            spec = parse_device(nxt.get('value', ''))
            if spec is not None:
                yield cmdline, index, spec


def vhostblk_disks(root):
    """List the vhost-blk disks of a domain as spec dicts, in document order."""
    return [spec for dummy, dummy2, spec in _device_pairs(root)]


def find_disk(root, disk_id):
    for spec in vhostblk_disks(root):
        if spec['id'] == disk_id:
            return spec
    return None


def native_disks(root):
    """The <disk> elements of a domain: dicts with path, target, readonly."""
    disks = []
    for disk in root.findall('./devices/disk'):
        source = disk.find('source')
        path = None
        if source is not None:
            path = source.get('file') or source.get('dev') or source.get('dir')
        target = disk.find('target')
        disks.append({
            'path': path,
            'target': target.get('dev') if target is not None else None,
            'readonly': disk.find('readonly') is not None,
        })
    return disks


def vhostuser_backings(root):
    """Backings of the vhost-user disks of a domain, from our metadata: dicts with id, path, readonly."""
    return [{'id': node.get('id'), 'path': node.get('path'), 'readonly': node.get('readonly') == 'yes'}
            for node in root.findall(f'./metadata/{{{META_NS}}}disks/{{{META_NS}}}disk')]


def boot_orders(root):
    """Boot orders set on native devices (<boot order='N'/>)."""
    orders = []
    for boot in root.findall('./devices/*/boot'):
        try:
            orders.append(int(boot.get('order')))
        except (TypeError, ValueError):
            pass
    return orders


# --------------------------------------------------------------------------
# changing a domain
# --------------------------------------------------------------------------

def _new_arg(value):
    elem = ET.Element(_ARG)
    elem.set('value', value)
    return elem


def set_disk(root, spec):
    """Add or replace the disk ``spec['id']`` in ``root``.

    Returns 'added', 'updated' or 'unchanged'.  Other arguments are untouched.
    """
    values = device_args(spec)
    for cmdline, index, current in _device_pairs(root):
        if current['id'] != spec['id']:
            continue
        args = list(cmdline)
        if [a.get('value') for a in args[index:index + 2]] == values:
            return 'unchanged'
        args[index + 1].set('value', values[1])
        return 'updated'

    cmdline = root.find(_CMDLINE)
    if cmdline is None:
        cmdline = ET.SubElement(root, _CMDLINE)
    args = list(cmdline)
    # insert after our last pair, else after the last qemu:arg (qemu:env stays behind)
    position = 0
    for index, arg in enumerate(args):
        if arg.tag == _ARG:
            position = index + 1
    pairs = [index for cm, index, dummy in _device_pairs(root) if cm is cmdline]
    if pairs:
        position = pairs[-1] + 2
    for offset, value in enumerate(values):
        cmdline.insert(position + offset, _new_arg(value))
    return 'added'


def remove_disk(root, disk_id):
    """Remove the disk ``disk_id``; returns True if it was there.

    A qemu:commandline left empty by the removal goes too.
    """
    for cmdline, index, spec in _device_pairs(root):
        if spec['id'] != disk_id:
            continue
        args = list(cmdline)
        cmdline.remove(args[index])
        cmdline.remove(args[index + 1])
        if not len(cmdline):
            root.remove(cmdline)
        return True
    return False


def _identity(path):
    return path


def path_users(root, name=None):
    """Who uses which path in a domain: dicts with domain, what, id, path, readonly.

    ``what`` is 'disk' (native <disk>, id = target dev), 'vhost-blk disk' (qemu-device) or
    'vhost-user disk'.
    """
    name = name or domain_name(root)
    users = [{'domain': name, 'what': 'disk', 'id': disk['target'], 'path': disk['path'],
              'readonly': disk['readonly']} for disk in native_disks(root) if disk['path']]
    users.extend({'domain': name, 'what': 'vhost-blk disk', 'id': disk['id'], 'path': disk['path'],
                  'readonly': disk['readonly']} for disk in vhostblk_disks(root) if disk['path'])
    users.extend({'domain': name, 'what': 'vhost-user disk', 'id': disk['id'], 'path': disk['path'],
                  'readonly': disk['readonly']} for disk in vhostuser_backings(root) if disk['path'])
    return users


def check_conflicts(root, spec, other_domains=(), resolve=_identity, what='vhost-blk disk', replaced=None):
    """Raise VhostBlkError if ``spec`` clashes with the domain or other domains.

    other_domains: iterable of (name, root) pairs.  resolve: maps a path to a
    comparable form (e.g. os.path.realpath).  Sharing a path is allowed only when
    both users are read-only.  ``what``: the kind of disk ``spec`` is ('vhost-blk disk' or
    'vhost-user disk'); ``replaced``: target of a native disk the disk replaces (not a user).
    """
    want = resolve(spec['path'])
    name = domain_name(root)
    users = [user for user in path_users(root, name)
             if not (user['what'] == what and user['id'] == spec['id'])
             and not (user['what'] == 'disk' and replaced is not None and user['id'] == replaced)]
    for other_name, other_root in other_domains:
        users.extend(path_users(other_root, other_name))
    for user in users:
        if resolve(user['path']) == want and not (spec['readonly'] and user['readonly']):
            raise VhostBlkError(f"Path {spec['path']} is already used by {user['what']} {user['id']} "
                                f"of domain {user['domain']}")

    bootindex = spec['bootindex']
    if bootindex is None or what != 'vhost-blk disk':
        return
    for other in vhostblk_disks(root):
        if other['id'] != spec['id'] and other['bootindex'] == bootindex:
            raise VhostBlkError(f"bootindex {bootindex} is already used by vhost-blk disk "
                                f"{other['id']} of domain {name}")
    if bootindex in boot_orders(root):
        raise VhostBlkError(f"bootindex {bootindex} is already used by a device with "
                            f"<boot order='{bootindex}'/> in domain {name}")


def public_spec(spec):
    """A spec as returned to the user: known keys plus the device line."""
    if spec is None:
        return None
    out = dict((key, spec.get(key)) for key in SPEC_KEYS)
    out['device'] = format_device(out)
    return out


_PASSWD_RE = re.compile(r"""(\bpasswd=)(['"])[^'"]*\2""")


def mask_secrets(xml_text):
    """Hide graphics passwords in XML meant for a diff."""
    return _PASSWD_RE.sub(r'\1\2********\2', xml_text)
