#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
# GNU General Public License v2.0 or later, so version 3 or later too (see https://www.gnu.org/licenses/gpl-2.0.txt)

# Ansible modules import after DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r'''
---
module: disk
short_description: Manage vhost-blk disks of libvirt domains
version_added: 0.1.0
description:
  - Adds, updates or removes a disk of a libvirt domain whose I/O the C(vhost_blk) kernel module
    serves. Two transports (O(transport)) reach the module.
  - "V(vhost-user) (the default): a native libvirt C(<disk type='vhostuser'>) connected to a
    C(vhost-blk-user@INSTANCE) systemd service (package vhost-blk-tools), one per disk. Works
    with the distribution's QEMU and libvirt. The module writes the disk (C(<driver queues>),
    C(<source type='unix'>) with C(<reconnect>), C(<target>), C(<boot order>), the user alias
    C(ua-ID)), gives the domain the shared memory vhost-user needs (C(<memoryBacking>) with
    C(<source type='memfd'/>) and C(<access mode='shared'/>)), writes
    C(/etc/vhost-blk/user/INSTANCE.conf) and enables and starts the service (restarting it when
    its configuration changed). With O(live=true) it also hot-plugs the disk into, or unplugs it
    from, a running domain."
  - What libvirt cannot hold for a vhost-user disk (the backing path, the native disk a
    conversion replaced) is kept in the domain's C(<metadata>), in the namespace
    C(http://vhostblk.fleet/xmlns/libvirt/domain/1.0).
  - V(vhost-user) can take over an existing native file or block C(<disk>) (O(convert_from)), keeping
    its target, PCI address and boot order, and give it back when the disk is removed.
  - V(qemu-device) (the patched-QEMU path, unchanged) writes a C(vhost-blk-pci) QEMU device. The
    rest of this description is about it.
  - libvirt has no vhost-blk disk type. The disk is written as one C(-device) argument pair in
    the C(<qemu:commandline>) element of the QEMU domain namespace, which is declared on
    C(<domain>) so the definition survives C(virsh edit).
  - A disk is identified by O(id). Updating it rewrites exactly its argument pair in place,
    removing it removes exactly that pair. Other C(<qemu:commandline>) arguments are left alone.
  - The device line is rebuilt from the options on every run; options that are not set are
    left out of it (QEMU defaults apply). Unknown properties added by hand are dropped when
    the disk is rewritten.
  - libvirt cannot hot-plug pass-through devices. For a running domain the module changes the
    persistent definition only and returns RV(restart_required=true) until the domain is
    restarted with the new definition.
  - libvirt does not label pass-through files. The module therefore sets the ownership of
    the backing file to the user and group QEMU runs as (see O(manage_ownership)). With
    V(vhost-user) QEMU never opens the backing; the module changes its owner to the service's
    user C(vhost-blk) instead (by C(chown), not an ACL).
author:
  - vhost-blk fleet developers (@vhostblk)
requirements:
  - libvirt-python on the managed host
  - the vhost_blk kernel module (C(/dev/vhost-blk))
  - "V(vhost-user): the vhost-blk-tools package (C(vhost-blk-user), C(vhost-blk-user@.service), user
    C(vhost-blk)), systemd, a libvirt with C(<disk type='vhostuser'>) (7.1 or later)"
  - "V(qemu-device): a QEMU with the C(vhost-blk-pci) device"
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  name:
    description:
      - Name of the libvirt domain.
    type: str
    required: true
    aliases: [domain]
  id:
    description:
      - QEMU id of the disk, for example C(vblk0). Identifies the disk in the domain.
      - Must start with a letter and hold only letters, digits, C(-), C(.) and C(_).
      - With V(vhost-user) the disk carries the libvirt user alias C(ua-ID).
    type: str
    required: true
    aliases: [alias]
  state:
    description:
      - Whether the disk should be in the definition.
      - V(absent) with V(vhost-user) also stops and disables the service instance and removes its
        configuration file, and puts back the native disk a conversion replaced.
    type: str
    choices: [present, absent]
    default: present
  transport:
    description:
      - How the guest reaches the kernel module.
      - V(vhost-user) is used when not set, except that O(state=absent) removes a V(qemu-device) disk
        with this O(id) if the domain has one.
    type: str
    choices: [vhost-user, qemu-device]
  target:
    description:
      - V(vhost-user) only. Target device of the disk (C(<target dev>)), C(vd) and one to three
        letters, for example C(vdb). The bus is always C(virtio).
      - When not set, a disk already defined keeps its target, a converted disk takes the target of
        the disk it replaces, and a new disk gets the first C(vdX) no disk of the domain uses.
    type: str
  live:
    description:
      - V(vhost-user) only. Change the running domain too, when it runs. Hot-plugs the disk
        (C(attachDeviceFlags) with C(VIR_DOMAIN_AFFECT_LIVE)), hot-unplugs it, and replaces it
        (unplug and plug) when it changed. A conversion unplugs the native disk first; a removal
        plugs the native disk back.
      - The running domain must already have shared memory; otherwise the module warns and
        returns RV(restart_required=true).
      - Hot-unplug needs the guest's cooperation. The module waits up to 60 seconds for the guest to
        let go of a disk (Linux takes about 5 seconds); when it has not, the module fails before
        changing anything else; run it again.
      - With V(false), a running domain keeps its disks until it is restarted
        (RV(restart_required)); the service instance of a disk the running domain still uses is
        not stopped on removal.
    type: bool
    default: false
  replace_with_native:
    description:
      - V(vhost-user) and O(state=absent) only. Give the domain its disk back as QEMU's own
        virtio-blk on the same backing (C(<disk type='file'>) or C(type='block'), raw, cache
        C(none), native AIO), keeping its target, PCI address, boot order, read-only flag and serial;
        this is how C(playbooks/remove.yml) takes vhost-blk off a host without taking disks from VMs.
      - A disk that took over a native one (O(convert_from)) always gets that one back instead.
    type: bool
    default: false
  convert_from:
    description:
      - V(vhost-user) only. Target (for example C(vdb)) of a native C(<disk type='file'>) or
        C(<disk type='block'>) with C(device='disk') and a raw driver, which the vhost-user disk
        replaces.
      - The disk takes over its source path (leave O(path) out), target, PCI address, boot order,
        serial, queues and read-only flag, unless those options are set. The native disk is
        recorded in the domain's C(<metadata>) and put back by O(state=absent).
    type: str
  instance:
    description:
      - V(vhost-user) only. Name of the C(vhost-blk-user@INSTANCE) service instance. Its socket is
        C(/run/vhost-blk/INSTANCE.sock), its configuration C(/etc/vhost-blk/user/INSTANCE.conf).
      - Defaults to C(DOMAIN-ID). A domain name with characters other than letters, digits,
        C(_), C(.) and C(-), or one too long for a socket path, is shortened and tagged with a hash.
      - A configuration file that another disk (or no run of this module) wrote is not touched.
    type: str
  cache:
    description:
      - V(vhost-user) only. Host cache mode of the back end, C(--cache). Not set, the back end's
        default applies (V(none), C(O_DIRECT)).
    type: str
    choices: [none, writeback]
  manage_service:
    description:
      - V(vhost-user) only. Write the instance configuration and drive systemd. Set to V(false) to
        manage only the libvirt definition.
    type: bool
    default: true
  path:
    description:
      - Backing raw image file or block device. Required when O(state=present).
      - Container formats (qcow2, QED, vmdk, vdi, vhdx, vpc, LUKS, ...) are refused, because vhost-blk
        serves the bytes of the file as they are.
      - Must not be used by another disk of the domain or of another domain, unless both uses
        are read-only.
    type: path
  queues:
    description:
      - Number of virtqueues (C(num-queues)), 1 to 16.
      - V(vhost-user) writes C(<driver queues>) and passes C(--queues) to the back end.
    type: int
  queue_size:
    description:
      - Size of each virtqueue (C(queue-size)), a power of two from 4 to 1024.
      - V(vhost-user) writes C(<driver queue_size>).
    type: int
  serial:
    description:
      - Disk serial number seen by the guest, printable ASCII, at most 20 bytes.
      - V(vhost-user) passes it to the back end (C(--serial)); the guest reads it with
        C(VIRTIO_BLK_T_GET_ID). libvirt refuses C(<serial>) on vhost-user disks. No white space,
        quotes, C(\), C($) or C(`).
      - V(qemu-device) refuses it for now. vhost-blk ABI 1 cannot hand a serial to the kernel module, so the
        C(vhost-blk-pci) device would refuse to start. The option is kept for a later ABI.
    type: str
  readonly:
    description:
      - Attach the disk read-only (C(read-only=on)). V(vhost-user) passes C(--readonly) to the back end
        (libvirt refuses C(<readonly/>) on vhost-user disks).
      - Defaults to V(false), with O(convert_from) to the read-only flag of the converted disk.
    type: bool
  bootindex:
    description:
      - Boot index of the disk. Must not clash with a C(<boot order>) of the domain.
      - V(vhost-user) writes C(<boot order>).
    type: int
  uri:
    description:
      - libvirt connection URI.
      - C(qemu:///embed?root=DIR) (libvirt's embedded QEMU driver, no daemon) works too; the unit
        tests use it to check the module against real libvirt.
    type: str
    default: qemu:///system
  check_device:
    description:
      - Fail when C(/dev/vhost-blk) is not a character device on the managed host.
      - Set to V(false) to prepare definitions before the kernel module is loaded.
    type: bool
    default: true
  manage_ownership:
    description:
      - Change the owner and group of O(path) to O(owner) and O(group) when O(state=present).
      - With V(vhost-user) the back end service opens the backing as user C(vhost-blk) (with the
        supplementary groups C(kvm) and C(disk)); the owner then defaults to C(vhost-blk).
      - In check mode the change is only reported.
      - Ownership of a block device node lasts until the next reboot or udev event; use a udev
        rule for block devices.
    type: bool
    default: true
  owner:
    description:
      - User QEMU runs as. Defaults to C(user) in C(/etc/libvirt/qemu.conf), else
        C(libvirt-qemu) (Debian) or C(qemu) (Fedora, RHEL), whichever exists.
      - V(vhost-user) defaults to C(vhost-blk), the user of the back-end service.
    type: str
  group:
    description:
      - Group QEMU runs as. Defaults like O(owner) (V(vhost-user) to C(vhost-blk)).
    type: str
notes:
  - "V(vhost-user): the service runs as C(vhost-blk) with C(ProtectHome=yes): backings under
    C(/home), C(/root) or C(/run/user) cannot be opened."
  - "V(vhost-user): a changed configuration restarts the service instance; a running guest's disk
    reconnects (C(<reconnect>)). A changed O(path) thus swaps the disk under a running guest: shut
    the domain down first, or use O(live=true), which unplugs and re-plugs the disk."
  - "V(vhost-user): removal leaves C(<memoryBacking>) in place unless the module added it and no
    vhost-user device is left."
  - "V(vhost-user), O(live=true): the live path is a thin call to libvirt and is exercised on real
    guests (tests/vm), not by the unit tests."
  - The domain must use the QEMU driver. The device line has the shape
    C(vhost-blk-pci,id=ID,drive=PATH,num-queues=N,queue-size=Q,serial=S,bootindex=B,read-only=on).
  - "AppArmor: virt-aa-helper only adds paths libvirt knows about. Allow the backing file and
    the device in a file of C(/etc/apparmor.d/abstractions/libvirt-qemu.d/) (older libvirt:
    C(/etc/apparmor.d/local/abstractions/libvirt-qemu)), for example
    C(/dev/vhost-blk rw,) and C(/srv/images/vm1.img rwk,), then reload the profiles."
  - "libvirt's device cgroup blocks C(/dev/vhost-blk), and the private C(/dev) libvirt builds
    for each domain lacks it, unless it is listed in C(cgroup_device_acl) of
    C(/etc/libvirt/qemu.conf) (restart libvirtd after the change). The module warns when
    C(qemu.conf) exists and the device is not listed; M(vhostblk.fleet.info) reports the setting."
  - SELinux labels are not changed; on SELinux hosts label the file C(svirt_image_t) yourself.
  - Live migration of a domain with a V(qemu-device) disk is not supported.
seealso:
  - module: vhostblk.fleet.info
  - name: libvirt vhost-user disks
    description: The C(vhostuser) disk type of the domain XML.
    link: https://libvirt.org/formatdomain.html#hard-drives-floppy-disks-cdroms
  - name: libvirt QEMU command-line pass-through
    description: The C(qemu:commandline) element of the domain XML.
    link: https://libvirt.org/kbase/qemu-passthrough-security.html
'''

EXAMPLES = r'''
- name: Give vm1 a four-queue vhost-user disk served by vhost-blk, hot-plugged if vm1 runs
  vhostblk.fleet.disk:
    name: vm1
    id: data
    path: /srv/images/vm1-data.img
    target: vdb
    queues: 4
    serial: VM1DATA
    live: true

- name: Let vhost-blk serve vm2's existing raw disk vdb (same target, PCI slot and boot order)
  vhostblk.fleet.disk:
    name: vm2
    id: root
    convert_from: vdb

- name: Give vdb back to libvirt's own virtio-blk disk
  vhostblk.fleet.disk:
    name: vm2
    id: root
    state: absent

- name: Give vm1 a four-queue vhost-blk-pci disk (patched QEMU)
  vhostblk.fleet.disk:
    name: vm1
    id: vblk0
    transport: qemu-device
    path: /srv/images/vm1-data.img
    queues: 4
    queue_size: 256

- name: Boot from a read-only vhost-blk-pci disk on a block device, before the module is loaded
  vhostblk.fleet.disk:
    name: vm2
    id: vblk-root
    transport: qemu-device
    path: /dev/vg0/vm2-root
    readonly: true
    bootindex: 1
    check_device: false

- name: Remove the vhost-blk-pci disk again and restart the domain if it is running
  vhostblk.fleet.disk:
    name: vm1
    id: vblk0
    state: absent
  register: vblk

- name: Restart to apply
  community.libvirt.virt:
    name: vm1
    state: restarted
  when: vblk.restart_required
'''

RETURN = r'''
disk:
  description:
    - The disk as defined now (as it would be in check mode); null when absent.
    - V(qemu-device) returns C(id), C(path), C(queues), C(queue_size), C(serial), C(readonly),
      C(bootindex) and C(device); V(vhost-user) returns C(id), C(path), C(target), C(queues),
      C(queue_size), C(serial), C(readonly), C(bootindex), C(cache), C(instance), C(socket) and C(xml).
  returned: success
  type: dict
  contains:
    id:
      description: QEMU id.
      type: str
      sample: vblk0
    path:
      description: Backing file or block device.
      type: str
      sample: /srv/images/vm1-data.img
    queues:
      description: num-queues, null when QEMU's default applies.
      type: int
      sample: 4
    queue_size:
      description: queue-size, null when QEMU's default applies.
      type: int
      sample: 256
    serial:
      description: Serial number.
      type: str
      sample: VM1DATA
    readonly:
      description: Read-only disk.
      type: bool
      sample: false
    bootindex:
      description: Boot index.
      type: int
      sample: 1
    device:
      description: V(qemu-device) only. The C(-device) value written to the domain.
      type: str
      sample: vhost-blk-pci,id=vblk0,drive=/srv/images/vm1-data.img,num-queues=4,queue-size=256
    target:
      description: V(vhost-user) only. Target device.
      type: str
      sample: vdb
    cache:
      description: V(vhost-user) only. Cache mode passed to the back end, null for its default.
      type: str
      sample: writeback
    instance:
      description: V(vhost-user) only. Service instance name.
      type: str
      sample: vm1-data
    socket:
      description: V(vhost-user) only. Socket of the instance, the disk's C(<source path>).
      type: str
      sample: /run/vhost-blk/vm1-data.sock
    xml:
      description: V(vhost-user) only. The C(<disk>) element written (without the address libvirt adds).
      type: str
transport:
  description: The transport of the disk handled.
  returned: success
  type: str
  sample: vhost-user
service:
  description: V(vhost-user) only. The back-end service instance of the disk.
  returned: success and transport is vhost-user
  type: dict
  contains:
    instance:
      description: Instance name.
      type: str
      sample: vm1-data
    unit:
      description: systemd unit.
      type: str
      sample: vhost-blk-user@vm1-data.service
    socket:
      description: Socket the instance listens on.
      type: str
      sample: /run/vhost-blk/vm1-data.sock
    conf:
      description: Configuration file of the instance.
      type: str
      sample: /etc/vhost-blk/user/vm1-data.conf
    actions:
      description:
        - What was (in check mode, would be) done, in order, of C(write), C(enable), C(start),
          C(restart), C(stop), C(disable), C(remove).
      type: list
      elements: str
      sample: [write, enable, start]
live:
  description:
    - V(vhost-user) only. Hot-plug operations on the running domain (O(live=true)), each
      C(attach|detach TYPE TARGET).
  returned: success and transport is vhost-user
  type: list
  elements: str
  sample: [detach file vdb, attach vhostuser vdb]
action:
  description: What happened to the definition.
  returned: success
  type: str
  choices: [added, updated, removed, unchanged]
  sample: added
restart_required:
  description: True when the domain runs with a different (or no) version of this disk.
  returned: success
  type: bool
  sample: true
msg:
  description: Human readable summary, says when a restart is needed.
  returned: always
  type: str
  sample: Disk vblk0 added to the definition of vm1; restart the domain to apply it
image:
  description: What the backing path is.
  returned: when O(state=present)
  type: dict
  contains:
    kind:
      description: C(file) or C(block).
      type: str
      sample: file
    size:
      description: Size in bytes of a file, null for a block device.
      type: int
      sample: 10737418240
    format:
      description: Detected format, always C(raw) on success.
      type: str
      sample: raw
ownership:
  description: Ownership of the backing path for QEMU (V(vhost-user), for the back-end service).
  returned: when O(state=present) and O(manage_ownership=true)
  type: dict
  contains:
    path:
      description: The backing path.
      type: str
      sample: /srv/images/vm1-data.img
    owner:
      description: Wanted owner.
      type: str
      sample: libvirt-qemu
    group:
      description: Wanted group.
      type: str
      sample: libvirt-qemu
    before:
      description: Owner and group found, as C(user:group).
      type: str
      sample: root:root
    changed:
      description: Whether the ownership was (in check mode, would be) changed.
      type: bool
      sample: true
'''

import grp
import os
import pwd
import stat
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_backend_service as svc
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_libvirt as lv
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_vhostuser as vu
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import (
    SERIAL_SUPPORTED,
    VhostBlkError,
    canonical_xml,
    check_conflicts,
    find_disk,
    make_spec,
    mask_secrets,
    parse_xml,
    public_spec,
    remove_disk,
    same_disk,
    set_disk,
    to_xml,
)
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_host import (
    DEVICE_PATH,
    is_char_device,
    module_facts,
    qemu_conf_facts,
    qemu_identity,
)
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_image import probe_image


def _uid(name):
    return int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid


def _gid(name):
    return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid


def _name_of(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def check_path(path):
    """Probe the backing path; raise VhostBlkError if vhost-blk cannot serve it."""
    if not os.path.exists(path):
        raise VhostBlkError(f'Backing path {path} does not exist')
    try:
        image = probe_image(path)
    except OSError as exc:
        raise VhostBlkError(f'Cannot read backing path {path}: {exc}') from exc
    if image['kind'] == 'other':
        raise VhostBlkError(f'Backing path {path} is neither a regular file nor a block device')
    if image['format'] != 'raw':
        raise VhostBlkError(f"Backing path {path} is a {image['format']} image; vhost-blk serves raw "
                            "images only (convert it with qemu-img convert -O raw)")
    return image


def ensure_ownership(module, path, service_user=False):
    """Give ``path`` to QEMU's user (qemu-device) or to the back-end service's (vhost-user)."""
    owner, group = module.params['owner'], module.params['group']
    if service_user:
        owner, group = owner or svc.SERVICE_USER, group or svc.SERVICE_GROUP
    if not owner or not group:
        found_owner, found_group = qemu_identity()
        owner, group = owner or found_owner, group or found_group
    if not owner or not group:
        raise VhostBlkError('Cannot tell which user and group QEMU runs as; set owner and '
                            'group, or manage_ownership=false')
    try:
        uid, gid = _uid(owner), _gid(group)
    except KeyError as exc:
        hint = ' (the vhost-blk-tools package creates the vhost-blk user)' if service_user else ''
        raise VhostBlkError(f'Unknown user or group for the backing path: {exc}{hint}; set owner and '
                            'group, or manage_ownership=false') from exc
    st = os.stat(path)
    result = {
        'path': path, 'owner': owner, 'group': group,
        'before': f'{_name_of(pwd.getpwuid, st.st_uid)}:{_name_of(grp.getgrgid, st.st_gid)}',
        'changed': (st.st_uid, st.st_gid) != (uid, gid),
    }
    if result['changed'] and not module.check_mode:
        try:
            os.chown(path, uid, gid)
        except OSError as exc:
            raise VhostBlkError(f'Cannot change the owner of {path} to {owner}:{group}: {exc}') from exc
    return result


def restart_message(name, disk_id, action, active, restart):
    if action == 'unchanged':
        text = f'Disk {disk_id} of {name} is up to date'
    elif action == 'removed':
        text = f'Disk {disk_id} removed from the definition of {name}'
    else:
        preposition = 'to' if action == 'added' else 'in'
        text = f'Disk {disk_id} {action} {preposition} the definition of {name}'
    if restart:
        return text + '; restart the domain to apply it (libvirt cannot hot-plug pass-through devices)'
    if action != 'unchanged' and not active:
        return text + '; it applies at the next start'
    return text


VHOST_USER_ONLY = ('target', 'convert_from', 'instance', 'cache')


def check_device(params):
    """Fail unless /dev/vhost-blk is there (check_device=false skips this)."""
    if params['check_device'] and not is_char_device(DEVICE_PATH):
        raise VhostBlkError(f'{DEVICE_PATH} is missing: load the vhost_blk kernel module (modprobe '
                            'vhost_blk), or set check_device=false')


def persistent_definition(conn, uri, name):
    """(connection, domain, inactive XML, its parsed root) of a persistent domain; conn None:
    connect to uri."""
    if conn is None:
        conn = lv.connect(uri)
    dom = lv.lookup(conn, name)
    if not dom.isPersistent():
        raise VhostBlkError(f'Domain {name} is transient: vhost-blk disks are kept in the persistent '
                            'definition, define the domain first')
    before_xml = lv.inactive_xml(dom)
    return conn, dom, before_xml, parse_xml(before_xml)


def run_qemu_device(module, conn=None):
    params = module.params
    name, disk_id, state = params['name'], params['id'], params['state']
    for option in VHOST_USER_ONLY:
        if params[option] is not None:
            raise VhostBlkError(f'{option} applies to transport vhost-user only')
    if params['live']:
        raise VhostBlkError('live=true needs transport vhost-user: libvirt cannot hot-plug the '
                            'pass-through devices of transport qemu-device')
    if params['replace_with_native']:
        raise VhostBlkError('replace_with_native applies to transport vhost-user only')
    result = {'changed': False, 'restart_required': False}
    spec = None
    if state == 'present':
        if not params['path']:
            raise VhostBlkError('path is required with state=present')
        spec = make_spec(disk_id, params['path'], queues=params['queues'],
                         queue_size=params['queue_size'], serial=params['serial'],
                         readonly=params['readonly'], bootindex=params['bootindex'])
        if spec['serial'] is not None and not SERIAL_SUPPORTED:
            raise VhostBlkError('serial is not supported yet: vhost-blk ABI 1 cannot pass it to the '
                                'kernel, and the vhost-blk-pci device refuses to start with it')
        result['image'] = check_path(spec['path'])
        check_device(params)
        kmod_max = module_facts()['parameters'].get('max_queues')
        if spec['queues'] and kmod_max and kmod_max.isdigit() and spec['queues'] > int(kmod_max):
            module.warn(f"queues={spec['queues']} exceeds max_queues={kmod_max} of the loaded vhost_blk "
                        'module: QEMU will refuse to start the disk until that parameter is raised')
        conf = qemu_conf_facts()
        if conf['present'] and not conf['device_allowed']:
            module.warn(f'{DEVICE_PATH} is not in cgroup_device_acl of /etc/libvirt/qemu.conf: QEMU will not '
                        'be allowed to open it')

    conn, dom, before_xml, root = persistent_definition(conn, params['uri'], name)

    if state == 'present':
        check_conflicts(root, spec, lv.other_domains(conn, name), resolve=os.path.realpath)
        action = set_disk(root, spec)
    else:
        action = 'removed' if remove_disk(root, disk_id) else 'unchanged'

    new_xml = to_xml(root)
    before_canon = canonical_xml(before_xml)
    after_canon = canonical_xml(new_xml)
    if before_canon == after_canon:
        action = 'unchanged'
    elif not module.check_mode:
        new_dom = lv.define(conn, new_xml)
        after_canon = canonical_xml(lv.inactive_xml(new_dom))
    result['changed'] = before_canon != after_canon
    if result['changed'] and module._diff:
        result['diff'] = {
            'before': mask_secrets(before_canon), 'after': mask_secrets(after_canon),
            'before_header': f'{name} (persistent definition)',
            'after_header': f'{name} (persistent definition)',
        }

    if state == 'present' and params['manage_ownership']:
        result['ownership'] = ensure_ownership(module, spec['path'])
        result['changed'] = result['changed'] or result['ownership']['changed']

    active = bool(dom.isActive())
    if active:
        live = find_disk(parse_xml(lv.live_xml(dom)), disk_id)
        result['restart_required'] = not same_disk(live, spec)
    result['action'] = action
    result['disk'] = public_spec(spec)
    result['msg'] = restart_message(name, disk_id, action, active, result['restart_required'])
    result['transport'] = 'qemu-device'
    return result


def _runner(module):
    def run(argv):
        exe = argv[0]
        if '/' not in exe:
            exe = module.get_bin_path(exe, opt_dirs=['/usr/bin', '/bin', '/usr/sbin', '/sbin'])
        if exe is None:
            return 127, '', f'{argv[0]}: command not found'
        return module.run_command([exe] + list(argv[1:]))
    return run


def backend_service(module):
    return svc.BackendService(_runner(module), root=svc.DEFAULT_ROOT, systemctl=svc.DEFAULT_SYSTEMCTL)


def vhost_user_values(params, root, current, original):
    """Option values of the disk, defaults from a converted native disk (``original`` facts),
    else from our disk as defined (the target)."""
    def pick(key, fallback=None):
        if params[key] is not None:
            return params[key]
        if original is not None and original.get(key) is not None:
            return original[key]
        return fallback

    path = params['path']
    if original is not None:
        if path and os.path.realpath(path) != os.path.realpath(original['path']):
            raise VhostBlkError(f"path {path} differs from the source {original['path']} of disk "
                                f"{original['target']}, which convert_from takes over: leave path out")
        path = original['path']
        if params['target'] and params['target'] != original['target']:
            raise VhostBlkError(f"target {params['target']} differs from the target of the converted disk "
                                f"{original['target']}: leave target out")
    if not path:
        raise VhostBlkError('path (or convert_from) is required with state=present')
    current_target = vu.spec_of_element(current)['target'] if current is not None else None
    target = pick('target') or current_target or vu.free_target(root)
    return {
        'path': path, 'target': target, 'queues': pick('queues'), 'queue_size': params['queue_size'],
        'serial': pick('serial'), 'readonly': bool(pick('readonly', False)),
        'bootindex': pick('bootindex'), 'cache': params['cache'],
    }


def _conversion(root, params, name, disk_id, current, record):
    """(original facts or None, native element replaced now or None, original element to record)."""
    recorded = record['original'] if record is not None else None
    convert_from = params['convert_from']
    if convert_from is None:
        return (vu.original_facts(recorded) if recorded is not None else None), None, recorded
    if recorded is not None:
        facts = vu.original_facts(recorded)
        if facts['target'] != convert_from:
            raise VhostBlkError(f"Disk {disk_id} of {name} took over disk {facts['target']} already: remove it "
                                f'(state=absent) before converting {convert_from}')
        return facts, None, recorded
    if current is not None:
        raise VhostBlkError(f'Disk {disk_id} of {name} exists already and took over no native disk: remove '
                            'it first, or leave convert_from out')
    facts = vu.convertible(root, convert_from)
    return facts, facts['element'], facts['element']


def _diffs(module, name, before_canon, after_canon, instance, conf_path, conf_before, conf_after):
    if not module._diff:
        return None
    diffs = []
    if before_canon != after_canon:
        diffs.append({'before': mask_secrets(before_canon), 'after': mask_secrets(after_canon),
                      'before_header': f'{name} (persistent definition)',
                      'after_header': f'{name} (persistent definition)'})
    if (conf_before or '') != (conf_after or ''):
        diffs.append({'before': conf_before or '', 'after': conf_after or '',
                      'before_header': conf_path if conf_before is not None else f'{conf_path} (absent)',
                      'after_header': conf_path if conf_after is not None else f'{conf_path} (absent)'})
    return diffs or None


UNPLUG_WAIT = 60


def _live_apply(dom, plan, phase):
    """The live path: hot-unplug (phase 'detach') or hot-plug (phase 'attach') the planned devices.
    Deliberately thin: libvirt does the work (attachDeviceFlags/detachDeviceFlags with
    VIR_DOMAIN_AFFECT_LIVE); the persistent definition is defined separately."""
    for operation, elem in plan:
        if operation != phase:
            continue
        if operation == 'detach':
            lv.detach_live(dom, vu.device_xml(elem))
        else:
            lv.attach_live(dom, vu.device_xml(elem))
    targets = [elem.find('target').get('dev') for operation, elem in plan if operation == 'detach']
    if phase == 'detach' and targets:
        # The guest releases a PCIe device after its attention-button delay (5 s in Linux's
        # pciehp); libvirt waits 5 s and may return before. Wait a while longer for it.
        deadline = time.monotonic() + UNPLUG_WAIT
        while True:
            live_root = parse_xml(lv.live_xml(dom))
            held = [target for target in targets if vu.find_target(live_root, target) is not None]
            if not held:
                return
            if time.monotonic() >= deadline:
                raise VhostBlkError(f'The guest has not released disk {held[0]} within {UNPLUG_WAIT} s '
                                    '(hot-unplug needs its cooperation): run the task again later')
            time.sleep(1)


def _plan_text(plan):
    return [f"{operation} {elem.get('type')} {elem.find('target').get('dev')}" for operation, elem in plan]


def vhost_user_message(name, disk_id, action, active, restart, live_ops, restored):
    if action == 'unchanged':
        text = f'Disk {disk_id} of {name} is up to date'
    elif action == 'removed':
        text = f'Disk {disk_id} removed from the definition of {name}'
        if restored:
            text += f', native disk {restored} put back'
    else:
        preposition = 'to' if action == 'added' else 'in'
        text = f'Disk {disk_id} {action} {preposition} the definition of {name}'
    if live_ops:
        text += '; running domain changed too (' + ', '.join(live_ops) + ')'
    if restart:
        return text + '; restart the domain to apply it (or use live=true)'
    if action != 'unchanged' and not active:
        return text + '; it applies at the next start'
    return text


def run_vhost_user(module, conn=None):
    params = module.params
    name, disk_id, state = params['name'], params['id'], params['state']
    if params['serial'] is not None or state == 'present':
        # the same validation as the qemu-device transport, before asking libvirt
        make_spec(disk_id, params['path'] or '/', queues=params['queues'], queue_size=params['queue_size'],
                  serial=params['serial'], bootindex=params['bootindex'])
    if params['instance'] is not None:
        svc.validate_instance(params['instance'])
    if params['target'] is not None:
        vu.make_spec(disk_id, '/', target=params['target'])
    result = {'changed': False, 'restart_required': False, 'transport': 'vhost-user'}
    service = backend_service(module)
    if state == 'present':
        if not params['path'] and not params['convert_from']:
            raise VhostBlkError('path (or convert_from) is required with state=present')
        if params['manage_service'] and not service.template_installed():
            raise VhostBlkError(f'{svc.UNIT_TEMPLATE} is not installed: install vhost-blk-tools, or set '
                                'manage_service=false')
        check_device(params)

    conn, dom, before_xml, root = persistent_definition(conn, params['uri'], name)
    current = vu.find_element(root, disk_id)
    record = vu.find_record(root, disk_id)
    instance = params['instance'] or (record['instance'] if record and record['instance'] else None) or \
        svc.instance_name(name, disk_id)
    svc.validate_instance(instance)
    active = bool(dom.isActive())
    live_root = parse_xml(lv.live_xml(dom)) if active else None
    plan, restored, spec = [], None, None
    keep_running = False

    if state == 'present':
        if find_disk(root, disk_id) is not None:
            raise VhostBlkError(f'Disk {disk_id} of {name} is a qemu-device (vhost-blk-pci) disk: remove it '
                                'first, or set transport=qemu-device')
        original, replaced, keep_original = _conversion(root, params, name, disk_id, current, record)
        values = vhost_user_values(params, root, current, original)
        spec = vu.make_spec(disk_id, values['path'], target=values['target'], queues=values['queues'],
                            queue_size=values['queue_size'], serial=values['serial'],
                            readonly=values['readonly'], bootindex=values['bootindex'],
                            cache=values['cache'], instance=instance, socket=svc.socket_path(instance))
        result['image'] = check_path(spec['path'])
        kmod_max = module_facts()['parameters'].get('max_queues')
        if spec['queues'] and kmod_max and kmod_max.isdigit() and spec['queues'] > int(kmod_max):
            module.warn(f"queues={spec['queues']} exceeds max_queues={kmod_max} of the loaded vhost_blk "
                        'module: the back end will refuse the extra queues until that parameter is raised')
        others = lv.other_domains(conn, name)
        check_conflicts(root, spec, others, resolve=os.path.realpath, what='vhost-user disk',
                        replaced=original['target'] if replaced is not None else None)
        vu.check_conflicts(root, spec, replaced)
        vu.check_socket_elsewhere(spec, others)
        action = vu.set_disk(root, spec, replaced)
        vu.set_record(root, spec, keep_original)
        vu.ensure_shared_memory(root)
        conf_after = None
        if params['manage_service']:
            conf_after = svc.render_conf(name, disk_id, spec['path'], svc.options_of(
                spec['serial'], spec['queues'], spec['readonly'], spec['cache']))
        if active:
            converting = original['target'] if original is not None else None
            if params['live'] and vu.has_shared_memory(live_root):
                plan = vu.live_plan(live_root, spec, None, True, converting)
            elif params['live'] or vu.live_plan(live_root, spec, None, True, converting):
                result['restart_required'] = True
                if params['live']:
                    module.warn(f'The running domain {name} has no shared memory (memoryBacking access '
                                'shared): vhost-user disks cannot be hot-plugged into it; restart it')
    else:
        state_now = service.state(instance) if params['manage_service'] else None
        native = _native_replacement(params, state_now, current, record)
        removed, restored = vu.remove_disk(root, disk_id, native)
        action = 'removed' if removed else 'unchanged'
        vu.release_shared_memory(root)
        conf_after = None
        if active and vu.find_element(live_root, disk_id) is not None:
            if params['live']:
                give_back = record['original'] if record and record['original'] is not None else native
                plan = vu.live_plan(live_root, {'id': disk_id}, give_back, False)
            else:
                result['restart_required'] = True
                keep_running = True

    # the back-end service
    service_actions = []
    conf_before = None
    if params['manage_service']:
        if state == 'present':
            state_now = service.state(instance)
        conf_before = state_now['conf']
        if state == 'present':
            service.check_owner(instance, name, disk_id, conf_before)
            service_actions = service.plan_present(state_now, conf_after)
        elif conf_before is None or svc.conf_owner(conf_before) == (name, disk_id):
            service_actions = service.plan_absent(state_now, keep_running)
            if keep_running:
                conf_after = conf_before
                module.warn(f'{svc.unit_name(instance)} keeps running: the running domain {name} still uses '
                            'the disk; run again after a restart of the domain (or use live=true)')
        else:
            conf_after = conf_before

    new_xml = to_xml(root)
    before_canon = canonical_xml(before_xml)
    after_canon = canonical_xml(new_xml)
    xml_changed = before_canon != after_canon
    if not xml_changed:
        action = 'unchanged'

    ownership_check = state == 'present' and params['manage_ownership']
    if not module.check_mode:
        _live_apply(dom, plan, 'detach')
        if xml_changed:
            new_dom = lv.define(conn, new_xml)
            after_canon = canonical_xml(lv.inactive_xml(new_dom))
    if ownership_check:
        result['ownership'] = ensure_ownership(module, spec['path'], service_user=True)
    if not module.check_mode:
        service.apply(instance, service_actions, conf_after)
        _live_apply(dom, plan, 'attach')

    result['changed'] = bool(xml_changed or service_actions or plan or
                             (ownership_check and result['ownership']['changed']))
    diffs = _diffs(module, name, before_canon, after_canon, instance, service.conf_path(instance),
                   conf_before, conf_after)
    if diffs:
        result['diff'] = diffs
    result['action'] = action
    result['disk'] = public_vhost_user(spec)
    result['service'] = {'instance': instance, 'unit': svc.unit_name(instance),
                         'socket': svc.socket_path(instance), 'conf': service.conf_path(instance),
                         'actions': service_actions}
    result['live'] = _plan_text(plan)
    result['msg'] = vhost_user_message(name, disk_id, action, active, result['restart_required'],
                                       result['live'], restored)
    return result


def _native_replacement(params, state_now, current, record):
    """With replace_with_native: the native virtio-blk disk that takes the place of a vhost-user
    disk that did not replace one (a converted disk gets its own original back). ``state_now``:
    the back-end service's state when the module manages it, else None."""
    if not params['replace_with_native'] or current is None or record is None or record['original'] is not None:
        return None
    serial = None
    if state_now is not None:
        words = svc.conf_values(state_now['conf']).get('OPTIONS', '').split()
        if '--serial' in words[:-1]:
            serial = words[words.index('--serial') + 1]
    try:
        block = stat.S_ISBLK(os.stat(record['path']).st_mode)
    except OSError as exc:
        raise VhostBlkError(f"Cannot give disk {params['id']} back as a native disk: its backing "
                            f"{record['path']} is not there ({exc.strerror})") from exc
    return vu.native_element(record['path'], current, readonly=record['readonly'], serial=serial, block=block)


def public_vhost_user(spec):
    if spec is None:
        return None
    out = dict((key, spec[key]) for key in ('id', 'path', 'target', 'queues', 'queue_size', 'serial', 'readonly',
                                            'bootindex', 'cache', 'instance', 'socket'))
    out['xml'] = vu.device_xml(vu.disk_element(spec))
    return out


def run_module(module):
    params = module.params
    transport = params['transport']
    if transport is None and params['state'] == 'absent' and params['live'] is False and \
            not any(params[option] is not None for option in VHOST_USER_ONLY):
        # Remove the disk with this id whatever its transport.
        conn = lv.connect(params['uri'])
        dom = lv.lookup(conn, params['name'])
        if find_disk(parse_xml(lv.inactive_xml(dom)), params['id']) is not None:
            return run_qemu_device(module, conn)
        return run_vhost_user(module, conn)
    if transport == 'qemu-device':
        return run_qemu_device(module)
    return run_vhost_user(module)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True, aliases=['domain']),
            id=dict(type='str', required=True, aliases=['alias']),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            path=dict(type='path'),
            queues=dict(type='int'),
            queue_size=dict(type='int'),
            serial=dict(type='str'),
            readonly=dict(type='bool'),
            bootindex=dict(type='int'),
            uri=dict(type='str', default='qemu:///system'),
            check_device=dict(type='bool', default=True),
            manage_ownership=dict(type='bool', default=True),
            owner=dict(type='str'),
            group=dict(type='str'),
            transport=dict(type='str', choices=['vhost-user', 'qemu-device']),
            target=dict(type='str'),
            live=dict(type='bool', default=False),
            replace_with_native=dict(type='bool', default=False),
            convert_from=dict(type='str'),
            instance=dict(type='str'),
            cache=dict(type='str', choices=list(svc.CACHE_MODES)),
            manage_service=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_module(module)
    except lv.LibvirtMissing as exc:
        module.fail_json(msg=missing_required_lib('libvirt-python'), exception=exc.traceback)
    except VhostBlkError as exc:
        module.fail_json(msg=str(exc))
    except lv.error_class() as exc:
        module.fail_json(msg=f'libvirt error: {exc}')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
