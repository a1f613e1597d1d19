# SPDX-License-Identifier: GPL-2.0-or-later
"""L2 helpers that need no VM: command lines and console parsing."""

import pytest
from vmharness import l2


def test_l2_command_tcg_and_kvm():
    tcg = l2.qemu_l2_command("tcg", "/x/i.cpio.gz", [["-device", "virtio-blk-pci,drive=d0"]])
    assert tcg[tcg.index("-accel") + 1] == "tcg,thread=single" and tcg[tcg.index("-cpu") + 1] == "max"
    assert tcg[-2:] == ["-device", "virtio-blk-pci,drive=d0"]
    assert "-no-reboot" in tcg and "panic=-1" in tcg[tcg.index("-append") + 1]
    kvm = l2.qemu_l2_command("kvm", "/x/i.cpio.gz", [])
    assert kvm[kvm.index("-cpu") + 1] == "host"
    with pytest.raises(ValueError):
        l2.qemu_l2_command("hvf", "/x", [])


def test_parse_rc():
    assert l2.parse_rc(f"boot\n{l2.DONE_MARKER} rc=0\n") == 0
    assert l2.parse_rc(f"x\r\n{l2.DONE_MARKER} rc=3\r\n") == 3
    assert l2.parse_rc("Kernel panic - not syncing\n") is None


def test_bad_l2_accel_policy(monkeypatch):
    monkeypatch.setenv("VHOSTBLK_L2_ACCEL", "fast")
    with pytest.raises(ValueError, match="VHOSTBLK_L2_ACCEL"):
        l2.run_l2(object(), "/x", [])
