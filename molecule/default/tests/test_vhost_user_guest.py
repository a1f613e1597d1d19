# SPDX-License-Identifier: GPL-2.0-or-later
"""The libvirt guest on Debian's own QEMU whose vhost-blk disk vhostblk.fleet.disk added with the
vhost-user transport (no patched QEMU involved).

Its boot once hung in firmware: the back end offered size_max 1 GiB, SeaBIOS wraps size_max x
seg_max in 32 bits and read the disk in empty requests forever (fixed in vu_config.py).
"""

import os
import re

import testinfra.utils.ansible_runner
from libvirt_guest import VIRSH, console_value, run_guest

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

INSTANCE = "guest2-vblk0"
SOCKET = f"/run/vhost-blk/{INSTANCE}.sock"
BACKING = "/var/lib/vhost-blk/guest2.raw"
CONSOLE = "/var/log/libvirt/qemu/guest2-serial.log"


def test_qemu_is_debians_own(host):
    policy = host.check_output("apt-cache policy qemu-system-x86")
    installed = re.search(r"Installed: (\S+)", policy).group(1)
    assert "+vhostblk" not in installed, policy


def test_back_end_service_runs_sandboxed(host):
    svc = host.service(f"vhost-blk-user@{INSTANCE}")
    assert svc.is_running and svc.is_enabled
    # not `ss`: the service has PrivateNetwork=yes, so its socket is listed in its own network
    # namespace only (a path socket is still reachable from every namespace)
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert sock.group == "kvm" and sock.mode == 0o660
    props = host.check_output(f"systemctl show vhost-blk-user@{INSTANCE} -p User -p NoNewPrivileges -p DevicePolicy")
    assert "User=vhost-blk" in props and "NoNewPrivileges=yes" in props and "DevicePolicy=closed" in props
    conf = host.file(f"/etc/vhost-blk/user/{INSTANCE}.conf").content_string
    assert f"BACKING={BACKING}" in conf, conf
    assert host.file(BACKING).user == "vhost-blk"


def test_domain_has_a_native_vhostuser_disk(host):
    xml = host.check_output(f"{VIRSH} dumpxml --inactive guest2")
    assert "<disk type='vhostuser' device='disk'" in xml, xml
    assert f"path='{SOCKET}'" in xml and "<access mode='shared'/>" in xml, xml


def test_libvirt_guest_does_io_through_vhost_user(host):
    """libvirt starts guest2 with Debian's QEMU (AppArmor, cgroups, its own labelling); its only disk
    is served by vhost-blk-user: 8 MiB of random data written, flushed, caches dropped, read back,
    and the backing file must hold exactly that."""
    console = run_guest(host, "guest2", CONSOLE)
    assert "vhost-user-blk-pci" in host.file("/var/log/libvirt/qemu/guest2.log").content_string
    assert console_value(console, "QUEUES") == "2", console[-3000:]
    assert console_value(console, "SERIAL") == "guest2-vblk0", console[-3000:]
    guest_sha, readback_sha = console_value(console, "GUEST-SHA"), console_value(console, "READBACK-SHA")
    backing_sha = host.check_output(f"head -c 8M {BACKING} | sha256sum").split()[0]
    print(f"vhost-user guest: wrote {guest_sha}\n                  read  {readback_sha}\n"
          f"                  backing {backing_sha}")
    assert guest_sha and guest_sha == readback_sha == backing_sha
    journal = host.check_output(f"journalctl -u vhost-blk-user@{INSTANCE} --no-pager -o cat")
    assert "front end connected" in journal and "dropping" not in journal, journal
