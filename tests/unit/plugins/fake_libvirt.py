# SPDX-License-Identifier: GPL-2.0-or-later
"""A small fake of libvirt-python: enough for the vhost-blk modules.

FakeConn.defineXML() behaves like libvirt where it matters to the modules: it
refuses XML that is not well formed (an undeclared qemu: prefix included),
re-formats what it stores (its own indentation and quoting, as libvirt does),
keeps graphics passwords out of XMLDesc() unless VIR_DOMAIN_XML_SECURE is given.
"""


import re
import types
import xml.dom.minidom

VIR_DOMAIN_XML_SECURE = 1
VIR_DOMAIN_XML_INACTIVE = 2
VIR_DOMAIN_AFFECT_LIVE = 1


class libvirtError(Exception):  # pylint: disable=invalid-name
    """Same name as the binding's exception class."""


def libvirt_normalise(text):
    """Re-format XML the way libvirt might: single quotes, its own indent."""
    doc = xml.dom.minidom.parseString(text)
    for node in doc.getElementsByTagName('*'):
        for child in list(node.childNodes):
            if child.nodeType == child.TEXT_NODE and not child.data.strip():
                node.removeChild(child)
    pretty = doc.documentElement.toprettyxml(indent='  ')
    return re.sub(r'="([^"]*)"', r"='\1'", pretty)


class FakeDomain:
    def __init__(self, conn, xml_text, active=False, live_xml=None):
        self.conn = conn
        self.persistent = libvirt_normalise(xml_text)
        self.active = active
        self.transient = False
        self.live = libvirt_normalise(live_xml) if live_xml else self.persistent
        self.pending_unplug = None

    def name(self):
        return re.search(r'<name>([^<]+)</name>', self.persistent).group(1)

    def isActive(self):  # pylint: disable=invalid-name
        return 1 if self.active else 0

    def isPersistent(self):  # pylint: disable=invalid-name
        return 0 if self.transient else 1

    def attachDeviceFlags(self, xml_text, flags):  # pylint: disable=invalid-name
        """Live hot-plug only (the modules define the persistent side themselves)."""
        self.conn.hotplug.append(('attach', xml_text, flags))
        if flags != VIR_DOMAIN_AFFECT_LIVE or not self.active:
            raise libvirtError('fake: only live attach of a running domain')
        self.live = libvirt_normalise(self.live.replace('</devices>', xml_text + '</devices>'))

    def detachDeviceFlags(self, xml_text, flags):  # pylint: disable=invalid-name
        self.conn.hotplug.append(('detach', xml_text, flags))
        if flags != VIR_DOMAIN_AFFECT_LIVE or not self.active:
            raise libvirtError('fake: only live detach of a running domain')
        target = re.search(r"<target dev=.([a-z]+)", xml_text).group(1)
        if self.conn.guest_keeps_disks:
            return
        if self.conn.guest_release_polls:
            self.pending_unplug = target  # the guest lets go after that many looks at the live XML
            return
        self._remove_live_disk(target)

    def _remove_live_disk(self, target):
        doc = xml.dom.minidom.parseString(self.live)
        for disk in doc.getElementsByTagName('disk'):
            targets = disk.getElementsByTagName('target')
            if targets and targets[0].getAttribute('dev') == target:
                disk.parentNode.removeChild(disk)
        self.live = libvirt_normalise(doc.toxml())

    def XMLDesc(self, flags=0):  # pylint: disable=invalid-name
        if self.pending_unplug and self.active and not flags & VIR_DOMAIN_XML_INACTIVE:
            self.conn.guest_release_polls -= 1
            if self.conn.guest_release_polls <= 0:
                self._remove_live_disk(self.pending_unplug)
                self.pending_unplug = None
        text = self.persistent if (flags & VIR_DOMAIN_XML_INACTIVE or not self.active) else self.live
        if not flags & VIR_DOMAIN_XML_SECURE:
            text = re.sub(r" passwd='[^']*'", '', text)
        return text


class FakeConn:
    def __init__(self, domains=()):
        self.domains = {}
        self.defined = []
        self.hotplug = []
        self.guest_keeps_disks = False
        self.guest_release_polls = 0
        for dom in domains:
            self.add(*dom)

    def add(self, xml_text, active=False, live_xml=None):
        dom = FakeDomain(self, xml_text, active, live_xml)
        self.domains[dom.name()] = dom
        return dom

    def lookupByName(self, name):  # pylint: disable=invalid-name
        if name not in self.domains:
            raise libvirtError(f"Domain not found: no domain with matching name '{name}'")
        return self.domains[name]

    def listAllDomains(self, flags=0):  # pylint: disable=invalid-name,unused-argument
        return [self.domains[name] for name in sorted(self.domains)]

    def defineXML(self, xml_text):  # pylint: disable=invalid-name
        try:
            doc = xml.dom.minidom.parseString(xml_text)
        except Exception as exc:  # pylint: disable=broad-except
            raise libvirtError(f'XML error: {exc}') from exc
        root = doc.documentElement
        for elem in root.getElementsByTagName('*'):
            if elem.prefix == 'qemu' and root.getAttribute('xmlns:qemu') != \
                    'http://libvirt.org/schemas/domain/qemu/1.0':
                raise libvirtError('qemu namespace not declared on <domain>')
        self.defined.append(xml_text)
        name = re.search(r'<name>([^<]+)</name>', xml_text).group(1)
        dom = self.domains.get(name)
        if dom is None:
            return self.add(xml_text)
        dom.persistent = libvirt_normalise(xml_text)
        return dom


def make_module(conn, fail_open=False):
    """A module object to put into sys.modules['libvirt']."""
    mod = types.ModuleType('libvirt')
    mod.libvirtError = libvirtError
    mod.VIR_DOMAIN_XML_SECURE = VIR_DOMAIN_XML_SECURE
    mod.VIR_DOMAIN_XML_INACTIVE = VIR_DOMAIN_XML_INACTIVE
    mod.VIR_DOMAIN_AFFECT_LIVE = VIR_DOMAIN_AFFECT_LIVE
    mod.opened = []

    def _open(uri):
        if fail_open:
            raise libvirtError(f'Failed to connect socket to {uri}')
        mod.opened.append(uri)
        return conn

    def _open_read_only(uri):
        mod.read_only.append(uri)
        return _open(uri)

    mod.open = _open
    mod.openReadOnly = _open_read_only
    mod.read_only = []
    mod.event_loops = []
    mod.virEventRegisterDefaultImpl = lambda: mod.event_loops.append(True)
    return mod
