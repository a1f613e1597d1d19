# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Thin, lazily imported access to libvirt-python.

The libvirt binding is imported on first use only, so the modules load (and
their unit tests run) on machines without it.  Tests put a fake ``libvirt``
module into ``sys.modules``.
"""


import traceback

from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import (
    VhostBlkError,
    parse_xml,
)

# Fallbacks for virDomainXMLFlags, should the binding lack the names.
XML_SECURE = 1
XML_INACTIVE = 2


class LibvirtMissing(Exception):
    """libvirt-python is not installed; ``traceback`` says why."""

    def __init__(self, trace):
        super().__init__('libvirt-python is not importable')
        self.traceback = trace


def import_libvirt():
    try:
        import libvirt  # noqa: PLC0415  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise LibvirtMissing(traceback.format_exc()) from exc
    return libvirt


class _NoLibvirtError(Exception):
    """Stands for libvirt.libvirtError when the binding is missing (never raised)."""


def error_class():
    """libvirt.libvirtError, for ``except`` clauses that must not import libvirt eagerly."""
    try:
        return import_libvirt().libvirtError
    except LibvirtMissing:
        return _NoLibvirtError


def flag(libvirt, name, default):
    return getattr(libvirt, 'VIR_DOMAIN_XML_' + name, default)


def is_embedded(uri):
    """True for libvirt's embedded driver URIs (qemu:///embed?root=...)."""
    return uri.split('?', 1)[0].rstrip('/').endswith(':///embed')


def connect(uri, readonly=False):
    """Open a libvirt connection (raises LibvirtMissing or VhostBlkError)."""
    libvirt = import_libvirt()
    try:
        if is_embedded(uri):
            # qemu:///embed?root=DIR runs the QEMU driver inside this process: it needs an
            # event loop and has no read-only mode.
            libvirt.virEventRegisterDefaultImpl()
            return libvirt.open(uri)
        if readonly:
            return libvirt.openReadOnly(uri)
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise VhostBlkError(f'Cannot connect to libvirt at {uri}: {exc}') from exc


def lookup(conn, name):
    libvirt = import_libvirt()
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        raise VhostBlkError(f'Domain {name} not found: {exc}') from exc


def inactive_xml(dom, secure=True):
    """Persistent definition of a domain (with secrets when ``secure``)."""
    libvirt = import_libvirt()
    flags = flag(libvirt, 'INACTIVE', XML_INACTIVE)
    if secure:
        flags |= flag(libvirt, 'SECURE', XML_SECURE)
    return dom.XMLDesc(flags)


def live_xml(dom):
    return dom.XMLDesc(0)


def define(conn, xml_text):
    """Define a domain; returns the new domain object."""
    libvirt = import_libvirt()
    try:
        return conn.defineXML(xml_text)
    except libvirt.libvirtError as exc:
        raise VhostBlkError(f'libvirt refused the new definition: {exc}') from exc


def other_domains(conn, exclude_name):
    """(name, parsed inactive XML) of every other domain; unreadable ones are skipped."""
    libvirt = import_libvirt()
    result = []
    try:
        domains = conn.listAllDomains(0)
    except libvirt.libvirtError:
        return result
    for dom in domains:
        try:
            name = dom.name()
            if name == exclude_name:
                continue
            result.append((name, parse_xml(inactive_xml(dom, secure=False))))
        except (libvirt.libvirtError, VhostBlkError):
            continue
    return result


# Fallback for virDomainModificationImpact, should the binding lack the name.
AFFECT_LIVE = 1


def _affect_live(libvirt):
    return getattr(libvirt, 'VIR_DOMAIN_AFFECT_LIVE', AFFECT_LIVE)


def attach_live(dom, device_xml):
    """Hot-plug a device into the running domain only (the persistent definition is defined
    separately, with everything around the device)."""
    libvirt = import_libvirt()
    try:
        dom.attachDeviceFlags(device_xml, _affect_live(libvirt))
    except libvirt.libvirtError as exc:
        raise VhostBlkError(f'libvirt could not hot-plug the disk: {exc}') from exc


def detach_live(dom, device_xml):
    """Hot-unplug a device from the running domain only.  libvirt waits a few seconds for the
    guest to let go and may return before it has."""
    libvirt = import_libvirt()
    try:
        dom.detachDeviceFlags(device_xml, _affect_live(libvirt))
    except libvirt.libvirtError as exc:
        raise VhostBlkError(f'libvirt could not hot-unplug the disk: {exc}') from exc
