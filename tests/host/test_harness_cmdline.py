# SPDX-License-Identifier: GPL-2.0-or-later
"""Harness logic that needs no VM: recipes, cache keys, command lines."""

import dataclasses
from pathlib import Path

import pytest
from vmharness import qemu, recipe
from vmharness.image import mmdebstrap_command
from vmharness.ssh import scp_command, ssh_command


def test_recipe_key_is_stable_and_tracks_content():
    r = recipe.get_recipe("debian12")
    assert r.key() == recipe.get_recipe("debian12").key()
    assert len(r.key()) == 16
    more = dataclasses.replace(r, packages=r.packages + ("strace",))
    assert more.key() != r.key()
    bumped = dataclasses.replace(r, customize_version=r.customize_version + 1)
    assert bumped.key() != r.key()
    assert recipe.get_recipe("debian13").key() != r.key()


def test_unknown_distro_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown distro 'centos'.*debian12"):
        recipe.get_recipe("centos")


def test_hypervisor_image_carries_what_converge_needs():
    pkgs = set(recipe.get_recipe("debian12").packages)
    assert {"linux-image-amd64", "linux-headers-amd64", "dkms", "openssh-server", "python3",
            "qemu-system-x86", "libvirt-daemon-system", "fio"} <= pkgs


def test_mmdebstrap_command():
    r = recipe.get_recipe("debian12")
    cmd = mmdebstrap_command(r, Path("/tmp/root"))
    assert cmd[0] == "mmdebstrap" and "--variant=apt" in cmd
    include = next(c for c in cmd if c.startswith("--include="))
    assert "linux-image-amd64" in include and "dkms" in include
    i = cmd.index("bookworm")
    assert cmd[i + 1] == "/tmp/root"
    assert cmd[i + 2:] == list(r.sources)
    assert any("bookworm-security" in s for s in r.sources)


def _spec(**kw):
    base = dict(kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd.img"), disk=Path("/run/x/overlay.qcow2"),
                ssh_port=2222, serial_log=Path("/run/x/serial.log"))
    base.update(kw)
    return qemu.BootSpec(**base)


def test_l1_command_tcg_defaults():
    cmd = qemu.l1_command(_spec())
    joined = " ".join(cmd)
    assert cmd[0] == "qemu-system-x86_64"
    assert cmd[cmd.index("-accel") + 1] == "tcg,thread=multi,tb-size=512"
    assert cmd[cmd.index("-cpu") + 1] == "max"
    assert "-daemonize" not in cmd  # the supervisor owns the process
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in joined
    assert "file=/run/x/overlay.qcow2,format=qcow2,if=virtio" in joined
    assert cmd[cmd.index("-serial") + 1] == "file:/run/x/serial.log"
    assert "root=/dev/vda" in cmd[cmd.index("-append") + 1]


def test_l1_command_kvm_and_extra_disks():
    cmd = qemu.l1_command(_spec(accel="kvm", extra_disks=(Path("/c/repo.img"),), memory_mib=2048, smp=1))
    assert cmd[cmd.index("-accel") + 1] == "kvm"
    assert cmd[cmd.index("-cpu") + 1] == "host"
    assert "file=/c/repo.img,format=raw,if=virtio,readonly=on" in cmd
    assert cmd[cmd.index("-m") + 1] == "2048" and cmd[cmd.index("-smp") + 1] == "1"


def test_bad_accel_rejected(monkeypatch):
    with pytest.raises(ValueError, match="accel must be"):
        qemu.accel_args("hvf")
    monkeypatch.setenv("VHOSTBLK_L1_ACCEL", "xen")
    with pytest.raises(ValueError):
        qemu.default_accel()
    monkeypatch.delenv("VHOSTBLK_L1_ACCEL")
    assert qemu.default_accel() == "tcg"


def test_overlay_is_copy_on_write_on_the_cached_image():
    cmd = qemu.overlay_command(Path("/cache/disk.raw"), Path("/run/x/overlay.qcow2"))
    assert cmd[:2] == ["qemu-img", "create"]
    assert ["-F", "raw", "-b", "/cache/disk.raw"] == cmd[cmd.index("-F"):cmd.index("-F") + 4]


def test_free_port_is_bindable():
    import socket

    port = qemu.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_ssh_and_scp_command_lines():
    ssh = ssh_command(2200, Path("/k/id"), "uname -r")
    assert ssh[:5] == ["ssh", "-i", "/k/id", "-p", "2200"]
    assert ssh[-2:] == ["root@127.0.0.1", "uname -r"]
    assert "StrictHostKeyChecking=no" in ssh and "BatchMode=yes" in ssh
    scp = scp_command(2200, Path("/k/id"), [Path("/a"), Path("/b")], "/tmp/", recursive=True)
    assert scp[scp.index("-P") + 1] == "2200" and "-r" in scp
    assert scp[-3:] == ["/a", "/b", "root@127.0.0.1:/tmp/"]


def test_tail(tmp_path):
    log = tmp_path / "serial.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert qemu.tail(log, 3) == "line 97\nline 98\nline 99"
    assert "no log" in qemu.tail(tmp_path / "missing")
