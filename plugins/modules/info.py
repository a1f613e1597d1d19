#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
# GNU General Public License v2.0 or later, so version 3 or later too (see https://www.gnu.org/licenses/gpl-2.0.txt)

# Ansible modules import after DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r'''
---
module: info
short_description: Gather facts about vhost-blk on a hypervisor
version_added: 0.1.0
description:
  - Reports the state of the C(vhost_blk) kernel module, its dkms state for every installed
    kernel, the users of C(/dev/vhost-blk), whether the installed QEMU has the
    C(vhost-blk-pci) device, whether Debian has a newer QEMU than the patched one
    (C(apt-cache policy qemu-system-x86)) and which QEMU processes still run a binary that was
    replaced since they started, libvirt's device ACL for it, the C(vhost-blk-user@) back-end
    instances and the vhost-blk disks (both transports) of libvirt domains.
  - Changes nothing. The results are returned as module return values; register them (this is
    an info module, it does not set C(ansible_facts)).
author:
  - vhost-blk fleet developers (@vhostblk)
requirements:
  - libvirt-python for the O(domains) part; without it that part is skipped with a note.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  domains:
    description:
      - Read the vhost-blk disks (qemu-device and vhost-user) of the libvirt domains.
    type: bool
    default: true
  uri:
    description:
      - libvirt connection URI (opened read-only).
    type: str
    default: qemu:///system
  qemu_binary:
    description:
      - QEMU binary to ask for its devices, a name looked up in E(PATH) or an absolute path.
    type: str
    default: qemu-system-x86_64
seealso:
  - module: vhostblk.fleet.disk
'''

EXAMPLES = r'''
- name: Gather vhost-blk facts
  vhostblk.fleet.info:
  register: vblk

- name: Every installed kernel must have the module built by dkms
  ansible.builtin.assert:
    that: vblk.dkms.kernels | dict2items | rejectattr('value.state', 'eq', 'installed') | list | length == 0
    fail_msg: "dkms has no vhost-blk for some kernel: {{ vblk.dkms.kernels }}"

- name: Host facts only, without asking libvirt
  vhostblk.fleet.info:
    domains: false
'''

RETURN = r'''
module:
  description: The C(vhost_blk) kernel module, from C(/sys/module/vhost_blk).
  returned: always
  type: dict
  contains:
    loaded:
      description: Module loaded and live.
      type: bool
    version:
      description: MODULE_VERSION of the loaded module.
      type: str
      sample: 0.1.0
    srcversion:
      description: Source checksum of the loaded module.
      type: str
    srcversion_on_disk:
      description:
        - Source checksum of the module file C(modprobe vhost_blk) would load now (C(modinfo -F srcversion)),
          null when there is none. Differs from RV(module.srcversion) when another build was installed
          after the loaded one.
      type: str
    refcnt:
      description: Reference count (open devices hold references).
      type: int
      sample: 2
    holders:
      description: Modules that use this one.
      type: list
      elements: str
    initstate:
      description: C(live), C(coming) or C(going).
      type: str
    parameters:
      description: Module parameters and their values.
      type: dict
kernels:
  description: Installed kernel releases (from C(/boot/vmlinuz-*), else C(/lib/modules)).
  returned: always
  type: list
  elements: str
  sample: [6.1.0-26-amd64, 6.12.12+bpo-amd64]
dkms:
  description: The dkms state of vhost-blk.
  returned: always
  type: dict
  contains:
    available:
      description: Whether the dkms command exists.
      type: bool
    entries:
      description: Parsed lines of C(dkms status vhost-blk).
      type: list
      elements: dict
    kernels:
      description:
        - Per installed kernel, C(state) (C(installed), C(built), C(missing), ...), C(version),
          C(warning) and C(headers) (whether C(/lib/modules/RELEASE/build) exists).
      type: dict
      sample: {"6.1.0-26-amd64": {"state": "installed", "version": "0.1.0", "warning": null, "headers": true}}
    error:
      description: Error output of dkms, if it failed.
      type: str
device:
  description: The C(/dev/vhost-blk) node and the processes holding it open.
  returned: always
  type: dict
  contains:
    path:
      description: Device path.
      type: str
      sample: /dev/vhost-blk
    exists:
      description: Whether the node exists.
      type: bool
    major:
      description: Major number.
      type: int
    minor:
      description: Minor number.
      type: int
    mode:
      description: Permission bits, octal.
      type: str
      sample: '0600'
    owner:
      description: Owner of the node.
      type: str
    group:
      description: Group of the node.
      type: str
    users:
      description: Processes with the device open, each with C(pid), C(comm), C(fds) and C(guest).
      type: list
      elements: dict
      sample: [{"pid": 4242, "comm": "qemu-system-x86", "fds": 2, "guest": "vm1"}]
    users_unreadable:
      description: PIDs whose open files could not be read (not run as root); C(users) may then be incomplete.
      type: list
      elements: int
    in_use:
      description:
        - C(true) when a process has the device open, C(false) when none has and every process could
          be checked, null when it cannot be known (C(users_unreadable) is not empty). Treat null as in use.
      type: bool
qemu:
  description: The QEMU binary and whether it has the C(vhost-blk-pci) device.
  returned: always
  type: dict
  contains:
    binary:
      description: Path of the binary, null if not found.
      type: str
    present:
      description: Binary found.
      type: bool
    vhost_blk_pci:
      description: C(-device help) lists C(vhost-blk-pci).
      type: bool
    version:
      description: QEMU version.
      type: str
      sample: 7.2.15
    properties:
      description: Property names of the C(vhost-blk-pci) device.
      type: list
      elements: str
    error:
      description: Why the binary could not be asked.
      type: str
    installed_version:
      description: Installed version of the C(qemu-system-x86) package, null when not installed.
      type: str
      sample: 1:7.2+dfsg-7+deb12u18+vhostblk3
    candidate_version:
      description: The version apt would install (C(apt-cache policy qemu-system-x86)).
      type: str
    patched_installed:
      description: The installed version is a patched build (C(+vhostblkN)).
      type: bool
    patched_available:
      description: The highest patched version apt knows (from the vhost-blk repository), else null.
      type: str
    debian_candidate:
      description:
        - The version apt would choose among the versions that are not patched builds (highest
          priority, then highest version), that is Debian's QEMU for this host.
      type: str
      sample: 1:7.2+dfsg-7+deb12u19
    newer_upstream:
      description:
        - C(debian_candidate) is above the patched build (the installed one, else the newest
          available). apt then installs Debian's version on the next upgrade, and VMs started
          afterwards have no C(vhost-blk-pci) device until a rebuild on it is published
          (C(packaging/README.md), "After a Debian QEMU security update"). Null when apt knows
          no patched build.
      type: bool
    policy_error:
      description: Why apt could not be asked (the package facts above are then null).
      type: str
    stale_vms:
      description:
        - QEMU processes (C(qemu-system-*)) whose binary was replaced after they started, by a
          package upgrade for instance; they run the old QEMU until restarted or migrated. Each
          with C(pid), C(exe), C(guest) (from C(-name guest=NAME), else null) and C(reason)
          (C(deleted), or C(replaced) when the path now names another file).
      type: list
      elements: dict
      sample: [{"pid": 4242, "exe": "/usr/bin/qemu-system-x86_64", "guest": "vm1", "reason": "deleted"}]
qemu_conf:
  description: Settings of C(/etc/libvirt/qemu.conf) that matter to vhost-blk.
  returned: always
  type: dict
  contains:
    present:
      description: The file exists.
      type: bool
    user:
      description: C(user) setting.
      type: str
    group:
      description: C(group) setting.
      type: str
    cgroup_device_acl:
      description: C(cgroup_device_acl) list, null when unset (libvirt's default applies).
      type: list
      elements: str
    device_allowed:
      description: Whether C(/dev/vhost-blk) is in C(cgroup_device_acl).
      type: bool
vhost_user:
  description: The vhost-user back end, C(vhost-blk-user@) service instances (package vhost-blk-tools).
  returned: always
  type: dict
  contains:
    template_installed:
      description: Whether the C(vhost-blk-user@.service) template is installed.
      type: bool
    instances:
      description:
        - Instances with a configuration file in C(/etc/vhost-blk/user) or a loaded unit, each
          with C(instance), C(unit), C(socket), C(socket_exists), C(conf), C(backing), C(options),
          C(domain) and C(id) (the disk that vhostblk.fleet.disk wrote it for, else null),
          C(enabled) and C(active).
      type: list
      elements: dict
      sample: [{"instance": "vm1-data", "unit": "vhost-blk-user@vm1-data.service",
                "socket": "/run/vhost-blk/vm1-data.sock", "socket_exists": true,
                "conf": "/etc/vhost-blk/user/vm1-data.conf", "backing": "/srv/vm1-data.img",
                "options": ["--queues", "4"], "domain": "vm1", "id": "data",
                "enabled": true, "active": true}]
domains:
  description:
    - Domains with vhost-blk disks, each with C(name), C(active), C(disks) (qemu-device disks of the
      persistent definition), C(live_disks) (of the running domain, else empty),
      C(vhost_user_disks) and C(live_vhost_user_disks) (the same for vhost-user disks, each with
      C(id), C(target), C(socket), C(instance), C(path), C(readonly), C(converted_from)) and
      C(restart_required).
    - Empty when O(domains=false) or libvirt is not usable (see RV(notes)).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "vm1", "active": true, "restart_required": false,
            "disks": [{"id": "vblk0", "path": "/srv/vm1.img", "queues": 4}], "live_disks": []}]
notes:
  description: Parts that were skipped and why.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_backend_service as svc
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_host as host
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_libvirt as lv
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_qemu_updates as updates
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_vhostuser as vu
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import (
    VhostBlkError,
    parse_xml,
    public_spec,
    same_disk,
    vhostblk_disks,
)


def vhost_user_disks(root):
    """Our vhost-user disks of a domain (alias ua-ID), with what our metadata knows of them."""
    disks = []
    for elem in root.findall("./devices/disk[@type='vhostuser']"):
        partial = vu.spec_of_element(elem)
        if partial['id'] is None:
            continue
        record = vu.find_record(root, partial['id']) or {}
        original = record.get('original')
        disks.append({
            'id': partial['id'], 'target': partial['target'], 'socket': partial['socket'],
            'queues': partial['queues'], 'queue_size': partial['queue_size'], 'bootindex': partial['bootindex'],
            'instance': record.get('instance'), 'path': record.get('path'),
            'readonly': record.get('readonly'),
            'converted_from': original.find('target').get('dev') if original is not None else None,
            'view': vu.disk_view(elem),
        })
    return disks


def _public(disks):
    return [dict((key, value) for key, value in disk.items() if key != 'view') for disk in disks]


def domain_facts(uri):
    """vhost-blk disks of every libvirt domain that has one."""
    conn = lv.connect(uri, readonly=True)
    libvirt = lv.import_libvirt()
    facts = []
    for dom in conn.listAllDomains(0):
        try:
            name = dom.name()
            active = bool(dom.isActive())
            root = parse_xml(lv.inactive_xml(dom, secure=False))
            live_root = parse_xml(lv.live_xml(dom)) if active else None
        except (libvirt.libvirtError, VhostBlkError):
            continue
        disks = vhostblk_disks(root)
        live = vhostblk_disks(live_root) if active else []
        user_disks = vhost_user_disks(root)
        live_user_disks = vhost_user_disks(live_root) if active else []
        if not disks and not live and not user_disks and not live_user_disks:
            continue
        by_id = dict((disk['id'], disk) for disk in live)
        user_views = sorted((disk['id'], sorted(disk['view'].items())) for disk in user_disks)
        live_user_views = sorted((disk['id'], sorted(disk['view'].items())) for disk in live_user_disks)
        restart = active and (
            len(disks) != len(live) or
            not all(same_disk(disk, by_id.get(disk['id'])) for disk in disks) or
            user_views != live_user_views)
        facts.append({
            'name': name, 'active': active, 'restart_required': restart,
            'disks': [public_spec(disk) for disk in disks],
            'live_disks': [public_spec(disk) for disk in live],
            'vhost_user_disks': _public(user_disks),
            'live_vhost_user_disks': _public(live_user_disks),
        })
    return sorted(facts, key=lambda item: item['name'])


def vhost_user_facts(run, root='/'):
    service = svc.BackendService(run, root=root)
    return {'template_installed': service.template_installed(), 'instances': service.instances()}


def gather(module, root='/'):
    def run(argv, **options):
        exe = argv[0]
        if '/' not in exe:
            exe = module.get_bin_path(exe, opt_dirs=['/usr/sbin', '/sbin'])
        if exe is None:
            return 127, '', f'{argv[0]}: command not found'
        return module.run_command([exe] + list(argv[1:]), **options)

    def run_c_locale(argv):
        return run(argv, environ_update={'LC_ALL': 'C', 'LANGUAGE': 'C'})

    kernels = host.installed_kernels(root)
    qemu = host.qemu_facts(run, module.params['qemu_binary'], root)
    qemu.update(updates.package_facts(run_c_locale))
    qemu['stale_vms'] = updates.stale_processes(root)
    result = {
        'changed': False,
        'module': host.module_facts(root, run),
        'kernels': kernels,
        'dkms': host.dkms_facts(run, root, kernels),
        'device': host.device_facts(root),
        'qemu': qemu,
        'qemu_conf': host.qemu_conf_facts(root),
        'vhost_user': vhost_user_facts(run, root),
        'domains': [],
        'notes': [],
    }
    if not result['dkms']['available']:
        result['notes'].append('dkms is not installed')
    if not result['qemu']['present']:
        result['notes'].append(f"QEMU binary {module.params['qemu_binary']} not found")
    if module.params['domains']:
        try:
            result['domains'] = domain_facts(module.params['uri'])
        except lv.LibvirtMissing:
            result['notes'].append('libvirt-python is not installed: domains skipped')
        except VhostBlkError as exc:
            result['notes'].append(f'{exc}: domains skipped')
        except lv.error_class() as exc:
            result['notes'].append(f'libvirt error: {exc}: domains skipped')
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domains=dict(type='bool', default=True),
            uri=dict(type='str', default='qemu:///system'),
            qemu_binary=dict(type='str', default='qemu-system-x86_64'),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**gather(module))


if __name__ == '__main__':
    main()
