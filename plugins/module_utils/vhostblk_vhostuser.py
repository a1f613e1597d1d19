# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""libvirt domain XML for vhost-user disks served by vhost-blk-user (pure functions, no libvirt).

A disk is native libvirt XML, identified by its user alias ``ua-ID``:

    <disk type='vhostuser' device='disk'>
      <driver name='qemu' type='raw' queues='4'/>
      <source type='unix' path='/run/vhost-blk/vm1-vblk0.sock'>
        <reconnect enabled='yes' timeout='10'/>
      </source>
      <target dev='vdb' bus='virtio'/>
      <boot order='2'/>
      <alias name='ua-vblk0'/>
    </disk>

libvirt refuses <serial>, <readonly/> and cache settings on vhostuser disks: those
go to the back end (vhost-blk-user --serial/--readonly/--cache).  What libvirt
cannot hold is kept in the domain's <metadata>, in our own namespace:

    <vhostblk:disks xmlns:vhostblk='...' memory-backing='added'>
      <vhostblk:disk id='vblk0' instance='vm1-vblk0' path='/srv/a.img' readonly='no'>
        <vhostblk:original><disk type='file' ...>...</disk></vhostblk:original>
      </vhostblk:disk>
    </vhostblk:disks>

``path`` is the backing (for conflict checks and facts), ``original`` the native
<disk> a conversion (convert_from) replaced, put back on removal.
"""


import copy
import re
import xml.etree.ElementTree as ET

from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import (
    META_NS,
    VhostBlkError,
    domain_name,
    validate_spec,
    vhostblk_disks,
)

USER_ALIAS_PREFIX = 'ua-'
RECONNECT_TIMEOUT = 10
TARGET_RE = re.compile(r'^vd[a-z]{1,3}$')
# OPTIONS is split at white space by systemd; the serial must be one word.
SERIAL_BAD_RE = re.compile(r'[\s"\'\\$`]')

_META = f'{{{META_NS}}}disks'
_META_DISK = f'{{{META_NS}}}disk'
_META_ORIGINAL = f'{{{META_NS}}}original'


def alias_of(disk_id):
    return USER_ALIAS_PREFIX + disk_id


# --------------------------------------------------------------------------
# the spec
# --------------------------------------------------------------------------

def make_spec(disk_id, path, *, target=None, queues=None, queue_size=None, serial=None,
              readonly=False, bootindex=None, cache=None, instance=None, socket=None):
    """A validated vhost-user disk spec (target may still be None: chosen later)."""
    spec = {
        'id': disk_id, 'path': path, 'target': target, 'queues': queues, 'queue_size': queue_size,
        'serial': serial, 'readonly': bool(readonly), 'bootindex': bootindex, 'cache': cache,
        'instance': instance, 'socket': socket,
    }
    validate_spec(spec)
    if target is not None and not TARGET_RE.match(target):
        raise VhostBlkError(f"Invalid target {target!r}: a virtio disk target is 'vd' and one to three "
                            "lower-case letters, for example vdb")
    if serial is not None and SERIAL_BAD_RE.search(serial):
        raise VhostBlkError(f'serial must not hold white space, quotes, backslashes, $ or ` with '
                            f'transport vhost-user (it is passed on the daemon command line), got {serial!r}')
    return spec


def disk_element(spec, address=None):
    """THE libvirt <disk> of a vhost-user disk."""
    disk = ET.Element('disk', {'type': 'vhostuser', 'device': 'disk'})
    driver = ET.SubElement(disk, 'driver', {'name': 'qemu', 'type': 'raw'})
    if spec.get('queues') is not None:
        driver.set('queues', str(spec['queues']))
    if spec.get('queue_size') is not None:
        driver.set('queue_size', str(spec['queue_size']))
    source = ET.SubElement(disk, 'source', {'type': 'unix', 'path': spec['socket']})
    ET.SubElement(source, 'reconnect', {'enabled': 'yes', 'timeout': str(RECONNECT_TIMEOUT)})
    ET.SubElement(disk, 'target', {'dev': spec['target'], 'bus': 'virtio'})
    if spec.get('bootindex') is not None:
        ET.SubElement(disk, 'boot', {'order': str(spec['bootindex'])})
    ET.SubElement(disk, 'alias', {'name': alias_of(spec['id'])})
    if address is not None:
        disk.append(copy.deepcopy(address))
    return disk


def disk_view(elem):
    """What matters of a vhost-user <disk> element (libvirt adds snapshot='no', addresses...)."""
    if elem is None:
        return None
    driver = elem.find('driver')
    source = elem.find('source')
    reconnect = source.find('reconnect') if source is not None else None
    target = elem.find('target')
    boot = elem.find('boot')
    alias = elem.find('alias')

    def attr(node, name):
        return node.get(name) if node is not None else None

    return {
        'queues': attr(driver, 'queues'), 'queue_size': attr(driver, 'queue_size'),
        'socket': attr(source, 'path'), 'source_type': attr(source, 'type'),
        'reconnect': (attr(reconnect, 'enabled'), attr(reconnect, 'timeout')),
        'target': attr(target, 'dev'), 'bus': attr(target, 'bus'),
        'boot': attr(boot, 'order'), 'alias': attr(alias, 'name'),
    }


def spec_of_element(elem):
    """A partial spec (id, target, socket, queues, queue_size, bootindex) out of a <disk>."""
    view = disk_view(elem)
    alias = view['alias'] or ''
    return {
        'id': alias[len(USER_ALIAS_PREFIX):] if alias.startswith(USER_ALIAS_PREFIX) else None,
        'target': view['target'], 'socket': view['socket'],
        'queues': int(view['queues']) if (view['queues'] or '').isdigit() else None,
        'queue_size': int(view['queue_size']) if (view['queue_size'] or '').isdigit() else None,
        'bootindex': int(view['boot']) if (view['boot'] or '').isdigit() else None,
    }


# --------------------------------------------------------------------------
# finding things
# --------------------------------------------------------------------------

def _devices(root):
    devices = root.find('devices')
    if devices is None:
        devices = ET.SubElement(root, 'devices')
    return devices


def find_element(root, disk_id):
    """Our <disk type='vhostuser'> with alias ua-ID, or None."""
    for disk in root.findall('./devices/disk'):
        alias = disk.find('alias')
        if disk.get('type') == 'vhostuser' and alias is not None and alias.get('name') == alias_of(disk_id):
            return disk
    return None


def find_target(root, target):
    for disk in root.findall('./devices/disk'):
        node = disk.find('target')
        if node is not None and node.get('dev') == target:
            return disk
    return None


def vhostuser_sockets(root):
    """(target, socket) of every vhostuser disk of a domain."""
    result = []
    for disk in root.findall("./devices/disk[@type='vhostuser']"):
        view = disk_view(disk)
        result.append((view['target'], view['socket']))
    return result


def free_target(root):
    """The first vdX no disk of the domain uses."""
    used = set()
    for disk in root.findall('./devices/disk/target'):
        used.add(disk.get('dev'))
    for letter in 'abcdefghijklmnopqrstuvwxyz':
        if f'vd{letter}' not in used:
            return f'vd{letter}'
    for first in 'abcdefghijklmnopqrstuvwxyz':
        for letter in 'abcdefghijklmnopqrstuvwxyz':
            if f'vd{first}{letter}' not in used:
                return f'vd{first}{letter}'
    raise VhostBlkError('No free virtio disk target left')


# --------------------------------------------------------------------------
# metadata of our own
# --------------------------------------------------------------------------

def _meta_root(root, create=False):
    metadata = root.find('metadata')
    if metadata is None:
        if not create:
            return None
        metadata = ET.Element('metadata')
        # after name/uuid/title/description, like libvirt writes it
        position = 0
        for index, child in enumerate(root):
            if child.tag in ('name', 'uuid', 'genid', 'title', 'description'):
                position = index + 1
        root.insert(position, metadata)
    meta = metadata.find(_META)
    if meta is None and create:
        meta = ET.SubElement(metadata, _META)
    return meta


def records(root):
    """Our metadata records: dicts with id, instance, path, readonly, original (element or None)."""
    meta = _meta_root(root)
    if meta is None:
        return []
    result = []
    for node in meta.findall(_META_DISK):
        original = node.find(_META_ORIGINAL)
        original_disk = original.find('disk') if original is not None else None
        result.append({'id': node.get('id'), 'instance': node.get('instance'), 'path': node.get('path'),
                       'readonly': node.get('readonly') == 'yes', 'original': original_disk})
    return result


def find_record(root, disk_id):
    for record in records(root):
        if record['id'] == disk_id:
            return record
    return None


def _canonical(elem):
    elem = copy.deepcopy(elem)
    for node in elem.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    elem.tail = None
    return ET.tostring(elem)


def set_record(root, spec, original=None):
    """Add or update the record of ``spec``; True if something changed."""
    meta = _meta_root(root, create=True)
    attrs = {'id': spec['id'], 'instance': spec['instance'], 'path': spec['path'],
             'readonly': 'yes' if spec['readonly'] else 'no'}
    node = None
    for candidate in meta.findall(_META_DISK):
        if candidate.get('id') == spec['id']:
            node = candidate
            break
    if node is not None:
        current = node.find(_META_ORIGINAL)
        current_disk = current.find('disk') if current is not None else None
        same_original = (current_disk is None and original is None) or (
            current_disk is not None and original is not None and _canonical(current_disk) == _canonical(original))
        if dict(node.attrib) == attrs and same_original:
            return False
        meta.remove(node)
    node = ET.SubElement(meta, _META_DISK, attrs)
    if original is not None:
        holder = ET.SubElement(node, _META_ORIGINAL)
        holder.append(copy.deepcopy(original))
    return True


def remove_record(root, disk_id):
    meta = _meta_root(root)
    if meta is None:
        return False
    for node in meta.findall(_META_DISK):
        if node.get('id') == disk_id:
            meta.remove(node)
            if not len(meta) and meta.get('memory-backing') is None:
                _drop_meta(root, meta)
            return True
    return False


def _drop_meta(root, meta):
    metadata = root.find('metadata')
    metadata.remove(meta)
    if not len(metadata):
        root.remove(metadata)


# --------------------------------------------------------------------------
# shared memory
# --------------------------------------------------------------------------

_MEMORY_CHILD_ORDER = ('hugepages', 'nosharepages', 'locked', 'source', 'access', 'allocation', 'discard')


def has_shared_memory(root):
    backing = root.find('memoryBacking')
    if backing is not None:
        access, source = backing.find('access'), backing.find('source')
        if access is not None and access.get('mode') == 'shared' and \
                source is not None and source.get('type') in ('memfd', 'file'):
            return True
    cells = root.findall('./cpu/numa/cell')
    return bool(cells) and all(cell.get('memAccess') == 'shared' for cell in cells) and \
        backing is not None and backing.find('source') is not None and \
        backing.find('source').get('type') in ('memfd', 'file')


def _insert_ordered(parent, child):
    rank = _MEMORY_CHILD_ORDER.index(child.tag)
    position = 0
    for index, node in enumerate(parent):
        if node.tag in _MEMORY_CHILD_ORDER and _MEMORY_CHILD_ORDER.index(node.tag) < rank:
            position = index + 1
    parent.insert(position, child)


def ensure_shared_memory(root):
    """Give the domain memfd shared memory (vhost-user needs it); returns 'added', 'changed' or None."""
    if has_shared_memory(root):
        return None
    backing = root.find('memoryBacking')
    action = 'changed'
    if backing is None:
        action = 'added'
        backing = ET.Element('memoryBacking')
        position = 0
        for index, child in enumerate(root):
            if child.tag in ('name', 'uuid', 'genid', 'title', 'description', 'metadata', 'maxMemory',
                             'memory', 'currentMemory', 'blkiotune', 'memtune'):
                position = index + 1
        root.insert(position, backing)
    source = backing.find('source')
    if source is None:
        _insert_ordered(backing, ET.Element('source', {'type': 'memfd'}))
    elif source.get('type') not in ('memfd', 'file'):
        source.set('type', 'memfd')
    access = backing.find('access')
    if access is None:
        _insert_ordered(backing, ET.Element('access', {'mode': 'shared'}))
    else:
        access.set('mode', 'shared')
    if action == 'added':
        _meta_root(root, create=True).set('memory-backing', 'added')
    return action


def release_shared_memory(root):
    """Undo ensure_shared_memory when it added the element and no vhost-user device is left.

    Returns True if <memoryBacking> was removed."""
    meta = _meta_root(root)
    if meta is None or meta.get('memory-backing') != 'added' or meta.findall(_META_DISK):
        return False
    still_needed = root.findall("./devices/*[@type='vhostuser']") or \
        root.findall("./devices/filesystem/driver[@type='virtiofs']")
    if still_needed:
        return False
    del meta.attrib['memory-backing']
    if not len(meta):
        _drop_meta(root, meta)
    backing = root.find('memoryBacking')
    if backing is not None and sorted(child.tag for child in backing) == ['access', 'source'] and \
            backing.find('source').get('type') == 'memfd' and backing.find('access').get('mode') == 'shared':
        root.remove(backing)
        return True
    return False


# --------------------------------------------------------------------------
# conversion of a native disk
# --------------------------------------------------------------------------

def convertible(root, target):
    """The native file/block <disk> with ``target``, checked for conversion (raises)."""
    name = domain_name(root)
    disk = find_target(root, target)
    if disk is None:
        raise VhostBlkError(f'convert_from: domain {name} has no disk with target {target}')
    kind, device = disk.get('type'), disk.get('device', 'disk')
    if kind not in ('file', 'block') or device != 'disk':
        raise VhostBlkError(f"convert_from: disk {target} of domain {name} is a {kind} {device}; only file "
                            "and block <disk device='disk'> can be converted")
    source = disk.find('source')
    path = source.get('file') or source.get('dev') if source is not None else None
    if not path:
        raise VhostBlkError(f'convert_from: disk {target} of domain {name} has no source path')
    driver = disk.find('driver')
    fmt = driver.get('type') if driver is not None else None
    if fmt not in (None, 'raw'):
        raise VhostBlkError(f'convert_from: disk {target} of domain {name} is a {fmt} image; vhost-blk '
                            'serves raw images only')
    serial = disk.find('serial')
    boot = disk.find('boot')
    queues = driver.get('queues') if driver is not None else None
    return {
        'element': disk, 'path': path, 'target': target, 'readonly': disk.find('readonly') is not None,
        'serial': serial.text if serial is not None and serial.text else None,
        'bootindex': int(boot.get('order')) if boot is not None and (boot.get('order') or '').isdigit() else None,
        'queues': int(queues) if (queues or '').isdigit() else None,
    }


def original_facts(original):
    """convertible()'s dict for a recorded original <disk> element."""
    holder = ET.Element('domain')
    devices = ET.SubElement(holder, 'devices')
    devices.append(copy.deepcopy(original))
    target = original.find('target').get('dev')
    facts = convertible(holder, target)
    facts['element'] = original
    return facts


# --------------------------------------------------------------------------
# changing a domain
# --------------------------------------------------------------------------

def check_conflicts(root, spec, replaced=None):
    """Raise if target, boot order or socket of ``spec`` clash within the domain.

    ``replaced``: the element the disk replaces (a converted native disk), ignored.
    """
    name = domain_name(root)
    ours = find_element(root, spec['id'])
    for disk in root.findall('./devices/disk'):
        if disk is ours or disk is replaced:
            continue
        target = disk.find('target')
        if target is not None and target.get('dev') == spec['target']:
            alias = disk.find('alias')
            what = f" ({alias.get('name')})" if alias is not None else ''
            raise VhostBlkError(f"target {spec['target']} is already used by a {disk.get('type')} disk{what} "
                                f'of domain {name}')
        source = disk.find('source')
        if disk.get('type') == 'vhostuser' and source is not None and source.get('path') == spec['socket']:
            raise VhostBlkError(f"socket {spec['socket']} is already used by disk "
                                f"{target.get('dev') if target is not None else '?'} of domain {name}")
    bootindex = spec['bootindex']
    if bootindex is None:
        return
    skip = [node.find('boot') for node in (ours, replaced) if node is not None]
    for boot in root.findall('./devices/*/boot'):
        if boot in skip:
            continue
        if boot.get('order') == str(bootindex):
            raise VhostBlkError(f"bootindex {bootindex} is already used by a device with "
                                f"<boot order='{bootindex}'/> in domain {name}")
    for other in vhostblk_disks(root):
        if other['bootindex'] == bootindex:
            raise VhostBlkError(f"bootindex {bootindex} is already used by vhost-blk disk {other['id']} "
                                f'of domain {name}')


def check_socket_elsewhere(spec, other_domains):
    for other_name, other_root in other_domains:
        for target, socket in vhostuser_sockets(other_root):
            if socket == spec['socket']:
                raise VhostBlkError(f"socket {spec['socket']} is already used by disk {target} of domain "
                                    f'{other_name}: set another instance name')


def set_disk(root, spec, replaced=None):
    """Add, update or keep our disk; returns 'added', 'updated' or 'unchanged'.

    ``replaced``: a native <disk> element to take the place (and PCI address) of.
    """
    devices = _devices(root)
    current = find_element(root, spec['id'])
    if current is not None:
        wanted = disk_element(spec)
        if disk_view(current) == disk_view(wanted):
            return 'unchanged'
        position = list(devices).index(current)
        new = disk_element(spec, current.find('address'))
        devices.remove(current)
        devices.insert(position, new)
        return 'updated'
    if replaced is not None:
        position = list(devices).index(replaced)
        new = disk_element(spec, replaced.find('address'))
        devices.remove(replaced)
        devices.insert(position, new)
        return 'added'
    position = 0
    for index, child in enumerate(devices):
        if child.tag in ('emulator', 'disk'):
            position = index + 1
    devices.insert(position, disk_element(spec))
    return 'added'


def native_element(path, current, readonly=False, serial=None, block=False):
    """A native virtio-blk <disk> on ``path`` to take the place of vhost-user disk ``current``:
    its target, boot order and PCI address, raw, cache none, native AIO (QEMU's fast path)."""
    disk = ET.Element('disk', {'type': 'block' if block else 'file', 'device': 'disk'})
    ET.SubElement(disk, 'driver', {'name': 'qemu', 'type': 'raw', 'cache': 'none', 'io': 'native'})
    ET.SubElement(disk, 'source', {'dev' if block else 'file': path})
    ET.SubElement(disk, 'target', {'dev': current.find('target').get('dev'), 'bus': 'virtio'})
    for tag in ('boot',):
        if current.find(tag) is not None:
            disk.append(copy.deepcopy(current.find(tag)))
    if readonly:
        ET.SubElement(disk, 'readonly')
    if serial:
        ET.SubElement(disk, 'serial').text = serial
    if current.find('address') is not None:
        disk.append(copy.deepcopy(current.find('address')))
    return disk


def remove_disk(root, disk_id, replacement=None):
    """Remove our disk; put back the native disk it replaced, or else ``replacement`` (a native
    <disk> element) when given.  Returns (removed, restored target)."""
    devices = _devices(root)
    current = find_element(root, disk_id)
    record = find_record(root, disk_id)
    restored = None
    if current is not None:
        position = list(devices).index(current)
        devices.remove(current)
    if record is not None and record['original'] is None and replacement is not None:
        record = dict(record, original=replacement)
    if record is not None and record['original'] is not None:
        original = copy.deepcopy(record['original'])
        target = original.find('target').get('dev')
        clash = find_target(root, target)
        if clash is not None:
            raise VhostBlkError(f'Cannot put back disk {target} of domain {domain_name(root)}: a '
                                f"{clash.get('type')} disk uses that target now")
        if current is None:
            position = len([child for child in devices if child.tag in ('emulator', 'disk')])
        devices.insert(position, original)
        restored = target
    removed_record = remove_record(root, disk_id)
    return current is not None or removed_record, restored


def live_plan(live_root, spec, record_original, want_present, converting_target=None):
    """What to hot-(un)plug so that the running domain matches: a list of (op, element).

    op is 'detach' or 'attach'; all detaches come first.  ``spec`` is the wanted disk
    (None when absent); ``record_original``: the native disk to give back on removal;
    ``converting_target``: target of a native disk being replaced now.
    """
    plan = []
    disk_id = spec['id']
    current = find_element(live_root, disk_id)
    if want_present:
        if current is not None and disk_view(current) == disk_view(disk_element(spec)):
            return plan
        address = None
        if current is not None:
            plan.append(('detach', current))
            address = current.find('address')
        if converting_target:
            native = find_target(live_root, converting_target)
            if native is not None and native.get('type') != 'vhostuser':
                plan.append(('detach', native))
                address = native.find('address')
        # the slot the guest knew the disk at, if any
        plan.append(('attach', disk_element(spec, address)))
        return plan
    if current is not None:
        plan.append(('detach', current))
        if record_original is not None:
            target = record_original.find('target').get('dev')
            if find_target(live_root, target) in (None, current):
                plan.append(('attach', record_original))
    return plan


def device_xml(elem):
    """A device element as text for attachDeviceFlags/detachDeviceFlags."""
    elem = copy.deepcopy(elem)
    elem.tail = None
    return ET.tostring(elem, encoding='unicode')
