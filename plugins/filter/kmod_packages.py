# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Versions of the vhost-blk module packages, for the kmod role.

The packages carry the module version (kmod-src/VERSION): vhost-blk-dkms and vhost-blk-tools as
it is (C(0.1.0)), each prebuilt module package and flavour metapackage as the module version plus
the kernel package's (C(0.1.0+k6.1.192.2), packaging/build_kmod_deb.py).
"""


DOCUMENTATION = r"""
name: kmod_package_specs
short_description: apt package specs that install the vhost-blk packages at one module version
description:
  - "Appends the version to each package name as the apt module takes it: C(name=VERSION) for
    packages versioned as the module (vhost-blk-dkms, vhost-blk-tools), C(name=VERSION+k*) for the
    per-kernel module packages and flavour metapackages (names starting with O(prefix))."
  - An empty O(version) leaves the names unversioned (whatever apt picks).
options:
  _input:
    description: Package names.
    type: list
    elements: str
    required: true
  version:
    description: The module version, for example C(0.1.0).
    type: str
    required: true
  prefix:
    description: Name prefix of the per-kernel packages and metapackages (C(vhost-blk-modules-)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Install the module packages of this collection's module version
  ansible.builtin.apt:
    name: "{{ ['vhost-blk-modules-6.1.0-56-amd64', 'vhost-blk-tools']
              | vhostblk.fleet.kmod_package_specs('0.1.0', 'vhost-blk-modules-') }}"
"""

RETURN = r"""
_value:
  description: C(kmod_package_specs) - the versioned specs; C(kmod_module_version) - the module version
    a package version carries (epoch and C(+k...) suffix dropped).
  type: raw
"""


def kmod_package_specs(names, version, prefix):
    if not version:
        return list(names or [])
    return [f"{name}={version}+k*" if name.startswith(prefix) else f"{name}={version}" for name in names or []]


def kmod_module_version(package_version):
    """'1:0.2.0+k6.1.192.2' -> '0.2.0'; '' for no package."""
    version = (package_version or "").strip().split(":", 1)[-1]
    return version.split("+k", 1)[0]


class FilterModule:
    def filters(self):
        return {"kmod_package_specs": kmod_package_specs, "kmod_module_version": kmod_module_version}
