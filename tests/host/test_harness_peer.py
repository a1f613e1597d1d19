# SPDX-License-Identifier: GPL-2.0-or-later
"""Two L1s that reach each other (molecule scenario migrate): the peer link (a UDP tunnel on the
loopback, a second NIC) and the shared disk (one raw image both write) on the L1 command line, their
validation, and create() handing them to QEMU (a fake qemu records its argv)."""

import json
import socket
import sys
from pathlib import Path

import pytest
from fake_image import fake_image
from vmharness import HarnessError, qemu
from vmharness.__main__ import main
from vmharness.instance import create

FAKE_QEMU = """#!{python}
import json, os, sys, time
with open(os.environ["FAKE_QEMU_ARGV"], "w") as f:
    json.dump(sys.argv[1:], f)
time.sleep(3600)
"""


def _spec(**kw):
    base = dict(kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd.img"), disk=Path("/run/x/overlay.qcow2"),
                ssh_port=2222, serial_log=Path("/run/x/serial.log"))
    base.update(kw)
    return qemu.BootSpec(**base)


def _option_values(cmd, option):
    return [cmd[i + 1] for i, word in enumerate(cmd[:-1]) if word == option]


def test_no_peer_link_and_no_shared_disk_by_default():
    cmd = qemu.l1_command(_spec())
    assert _option_values(cmd, "-netdev") == ["user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22"]
    assert not [d for d in _option_values(cmd, "-device") if "share-rw" in d]


def test_peer_link_is_a_udp_tunnel_to_the_other_end_on_the_loopback():
    link = qemu.PeerLink(40001, 40002, "52:54:00:76:62:01")
    cmd = qemu.l1_command(_spec(peer_link=link))
    netdevs = _option_values(cmd, "-netdev")
    assert netdevs[0].startswith("user,id=n0,")  # SSH stays on the first NIC (eth0)
    assert netdevs[1] == "socket,id=n1,udp=127.0.0.1:40002,localaddr=127.0.0.1:40001"
    assert "virtio-net-pci,netdev=n1,mac=52:54:00:76:62:01" in _option_values(cmd, "-device")
    devices = _option_values(cmd, "-device")
    assert devices.index("virtio-net-pci,netdev=n0") < devices.index("virtio-net-pci,netdev=n1,mac=52:54:00:76:62:01")


def test_the_two_ends_of_a_link_mirror_each_other():
    a, b = qemu.PeerLink(40001, 40002, "52:54:00:76:62:01"), qemu.PeerLink(40002, 40001, "52:54:00:76:62:02")
    net_a = _option_values(qemu.l1_command(_spec(peer_link=a)), "-netdev")[1]
    net_b = _option_values(qemu.l1_command(_spec(peer_link=b)), "-netdev")[1]
    assert "udp=127.0.0.1:40002" in net_a and "localaddr=127.0.0.1:40002" in net_b
    assert "udp=127.0.0.1:40001" in net_b and "localaddr=127.0.0.1:40001" in net_a


def test_shared_disk_is_uncached_shared_writable_and_named_by_serial():
    cmd = qemu.l1_command(_spec(shared_disks=(Path("/e/shared.img"),), extra_disks=(Path("/c/repo.img"),)))
    drives = _option_values(cmd, "-drive")
    assert "file=/e/shared.img,format=raw,if=none,id=shared0,cache=directsync,aio=threads" in drives
    devices = _option_values(cmd, "-device")
    assert "virtio-blk-pci,drive=shared0,share-rw=on,serial=vhostblk-shared0,addr=0x18" in devices
    # the boot disk stays vda and the repository disk vdb: QEMU creates if=virtio disks after every
    # -device, so the shared disk has a PCI slot behind theirs (and L1 finds it by serial)
    assert drives[0].startswith("file=/run/x/overlay.qcow2,") and drives[1].startswith("file=/c/repo.img,")
    assert "if=virtio" in drives[0] and "if=virtio" in drives[1]
    assert qemu.shared_disk_serial(2) == "vhostblk-shared2"


def test_too_many_shared_disks_is_a_clear_error():
    with pytest.raises(ValueError, match="at most 3 shared disks, not 4"):
        qemu.l1_command(_spec(shared_disks=tuple(Path(f"/e/s{i}.img") for i in range(4))))


@pytest.mark.parametrize("text, mac, message", [
    ("40001", "52:54:00:76:62:01", "LOCAL_PORT:REMOTE_PORT"),
    ("40001:40001", "52:54:00:76:62:01", "both 40001"),
    ("0:40001", "52:54:00:76:62:01", "local_port 0"),
    ("40001:70000", "52:54:00:76:62:01", "remote_port 70000"),
    ("40001:40002", "02:00:00:00:00:01", "52:54:00:xx:xx:xx"),
    ("40001:40002", "52:54:00:76:62:0G", "52:54:00:xx:xx:xx"),
])
def test_bad_peer_link_is_a_clear_error(text, mac, message):
    with pytest.raises(ValueError, match=message):
        qemu.PeerLink.parse(text, mac)


def test_peer_link_parse():
    assert qemu.PeerLink.parse("40001:40002", "52:54:00:76:62:01") == qemu.PeerLink(40001, 40002, "52:54:00:76:62:01")


def test_free_udp_ports_are_different_and_bindable():
    ports = qemu.free_udp_ports(4)
    assert len(set(ports)) == 4
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for dummy in ports]
    try:
        for s, port in zip(socks, ports):
            s.bind(("127.0.0.1", port))
    finally:
        for s in socks:
            s.close()


def test_cli_udp_ports(capsys):
    assert main(["udp-ports", "--count", "2"]) == 0
    ports = json.loads(capsys.readouterr().out)
    assert len(ports) == 2 and ports[0] != ports[1]
    assert main(["udp-ports", "--count", "0"]) == 1
    assert "--count 0" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--peer-link", "40001:40002"], "--peer-link and --peer-mac go together"),
    (["--peer-mac", "52:54:00:76:62:01"], "--peer-link and --peer-mac go together"),
    (["--peer-link", "40001", "--peer-mac", "52:54:00:76:62:01"], "LOCAL_PORT:REMOTE_PORT"),
    (["--shared-disk", "/nonexistent/shared.img"], "shared disk /nonexistent/shared.img does not exist"),
])
def test_cli_create_refuses_bad_peer_options_before_booting(tmp_path, capsys, extra, message):
    assert main(["--base", str(tmp_path / "inst"), "create", "hv1", *extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "inst" / "hv1").exists()


def test_create_hands_peer_link_and_shared_disk_to_qemu(tmp_path, monkeypatch):
    """create() boots QEMU with them (a fake qemu records its argv, then never answers SSH)."""
    fake = tmp_path / "fake-qemu"
    fake.write_text(FAKE_QEMU.format(python=sys.executable))
    fake.chmod(0o755)
    recorded = tmp_path / "argv.json"
    monkeypatch.setenv("VHOSTBLK_QEMU", str(fake))
    monkeypatch.setenv("FAKE_QEMU_ARGV", str(recorded))
    shared = tmp_path / "shared.img"
    shared.write_bytes(b"\0" * 4096)
    link = qemu.PeerLink(40011, 40012, "52:54:00:76:62:01")
    with pytest.raises(HarnessError, match="did not answer SSH"):
        create("hv1", base=tmp_path / "inst", image=fake_image(tmp_path), boot_timeout=3, log=lambda m: None,
               peer_link=link, shared_disks=[shared])
    argv = json.loads(recorded.read_text())
    assert "socket,id=n1,udp=127.0.0.1:40012,localaddr=127.0.0.1:40011" in argv
    assert "virtio-net-pci,netdev=n1,mac=52:54:00:76:62:01" in argv
    assert f"file={shared},format=raw,if=none,id=shared0,cache=directsync,aio=threads" in argv
    assert not (tmp_path / "inst" / "hv1").exists()  # the failed boot cleaned up
