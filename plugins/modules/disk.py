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
  - Adds, updates or removes a vhost-blk disk (the C(vhost-blk-pci) QEMU device served by the
    C(vhost_blk) kernel module) in the persistent definition of a libvirt domain.
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
    the backing file to the user and group QEMU runs as (see O(manage_ownership)).
author:
  - vhost-blk fleet developers (@vhostblk)
requirements:
  - libvirt-python on the managed host
  - the vhost_blk kernel module (C(/dev/vhost-blk)) and a QEMU with the C(vhost-blk-pci) device
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
    type: str
    required: true
    aliases: [alias]
  state:
    description:
      - Whether the disk should be in the definition.
    type: str
    choices: [present, absent]
    default: present
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
    type: int
  queue_size:
    description:
      - Size of each virtqueue (C(queue-size)), a power of two from 4 to 1024.
    type: int
  serial:
    description:
      - Disk serial number seen by the guest, printable ASCII, at most 20 bytes.
      - Refused for now. vhost-blk ABI 1 cannot hand a serial to the kernel module, so the
        C(vhost-blk-pci) device would refuse to start. The option is kept for a later ABI.
    type: str
  readonly:
    description:
      - Attach the disk read-only (C(read-only=on)).
    type: bool
    default: false
  bootindex:
    description:
      - Boot index of the disk. Must not clash with a C(<boot order>) of the domain.
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
      - In check mode the change is only reported.
      - Ownership of a block device node lasts until the next reboot or udev event; use a udev
        rule for block devices.
    type: bool
    default: true
  owner:
    description:
      - User QEMU runs as. Defaults to C(user) in C(/etc/libvirt/qemu.conf), else
        C(libvirt-qemu) (Debian) or C(qemu) (Fedora, RHEL), whichever exists.
    type: str
  group:
    description:
      - Group QEMU runs as. Defaults like O(owner).
    type: str
notes:
  - The domain must use the QEMU driver. The device line has the shape
    C(vhost-blk-pci,id=ID,drive=PATH,num-queues=N,queue-size=Q,serial=S,bootindex=B,read-only=on).
  - "AppArmor: virt-aa-helper only adds paths libvirt knows about. Allow the backing file and
    the device in C(/etc/apparmor.d/local/abstractions/libvirt-qemu), for example
    C(/dev/vhost-blk rw,) and C(/srv/images/vm1.img rwk,), then reload the profiles."
  - "libvirt's device cgroup blocks C(/dev/vhost-blk), and the private C(/dev) libvirt builds
    for each domain lacks it, unless it is listed in C(cgroup_device_acl) of
    C(/etc/libvirt/qemu.conf) (restart libvirtd after the change). The module warns when
    C(qemu.conf) exists and the device is not listed; M(vhostblk.fleet.info) reports the setting."
  - SELinux labels are not changed; on SELinux hosts label the file C(svirt_image_t) yourself.
  - Live migration of a domain with a vhost-blk disk is not supported.
seealso:
  - module: vhostblk.fleet.info
  - name: libvirt QEMU command-line pass-through
    description: The C(qemu:commandline) element of the domain XML.
    link: https://libvirt.org/kbase/qemu-passthrough-security.html
'''

EXAMPLES = r'''
- name: Give vm1 a four-queue vhost-blk disk
  vhostblk.fleet.disk:
    name: vm1
    id: vblk0
    path: /srv/images/vm1-data.img
    queues: 4
    queue_size: 256

- name: Boot from a read-only vhost-blk disk on a block device, before the module is loaded
  vhostblk.fleet.disk:
    name: vm2
    id: vblk-root
    path: /dev/vg0/vm2-root
    readonly: true
    bootindex: 1
    check_device: false

- name: Remove the disk again and restart the domain if it is running
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
  description: The disk as defined now (as it would be in check mode); null when absent.
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
      description: The C(-device) value written to the domain.
      type: str
      sample: vhost-blk-pci,id=vblk0,drive=/srv/images/vm1-data.img,num-queues=4,queue-size=256
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
  description: Ownership of the backing path for QEMU.
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_libvirt as lv
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


def ensure_ownership(module, path):
    owner, group = module.params['owner'], module.params['group']
    if not owner or not group:
        found_owner, found_group = qemu_identity()
        owner, group = owner or found_owner, group or found_group
    if not owner or not group:
        raise VhostBlkError('Cannot tell which user and group QEMU runs as; set owner and '
                            'group, or manage_ownership=false')
    try:
        uid, gid = _uid(owner), _gid(group)
    except KeyError as exc:
        raise VhostBlkError(f'Unknown user or group for the backing path: {exc}') from exc
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


def run_module(module):
    params = module.params
    name, disk_id, state = params['name'], params['id'], params['state']
    result = {'changed': False, 'restart_required': False}
    spec = None
    if state == 'present':
        spec = make_spec(disk_id, params['path'], queues=params['queues'],
                         queue_size=params['queue_size'], serial=params['serial'],
                         readonly=params['readonly'], bootindex=params['bootindex'])
        if spec['serial'] is not None and not SERIAL_SUPPORTED:
            raise VhostBlkError('serial is not supported yet: vhost-blk ABI 1 cannot pass it to the '
                                'kernel, and the vhost-blk-pci device refuses to start with it')
        result['image'] = check_path(spec['path'])
        if params['check_device'] and not is_char_device(DEVICE_PATH):
            raise VhostBlkError(f'{DEVICE_PATH} is missing: load the vhost_blk kernel module (modprobe '
                                'vhost_blk), or set check_device=false')
        kmod_max = module_facts()['parameters'].get('max_queues')
        if spec['queues'] and kmod_max and kmod_max.isdigit() and spec['queues'] > int(kmod_max):
            module.warn(f"queues={spec['queues']} exceeds max_queues={kmod_max} of the loaded vhost_blk "
                        'module: QEMU will refuse to start the disk until that parameter is raised')
        conf = qemu_conf_facts()
        if conf['present'] and not conf['device_allowed']:
            module.warn(f'{DEVICE_PATH} is not in cgroup_device_acl of /etc/libvirt/qemu.conf: QEMU will not '
                        'be allowed to open it')

    conn = lv.connect(params['uri'])
    dom = lv.lookup(conn, name)
    if not dom.isPersistent():
        raise VhostBlkError(f'Domain {name} is transient: vhost-blk disks are kept in the persistent '
                            'definition, define the domain first')
    before_xml = lv.inactive_xml(dom)
    root = parse_xml(before_xml)

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
    return result


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
            readonly=dict(type='bool', default=False),
            bootindex=dict(type='int'),
            uri=dict(type='str', default='qemu:///system'),
            check_device=dict(type='bool', default=True),
            manage_ownership=dict(type='bool', default=True),
            owner=dict(type='str'),
            group=dict(type='str'),
        ),
        required_if=[('state', 'present', ['path'])],
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
