# SPDX-License-Identifier: GPL-2.0-or-later
"""The L2 tools disk without a VM: the packer (run for real), QEMU arguments, the guest's setup."""

import subprocess
import tarfile

from vmharness import l2_tools


def test_packer_packs_a_self_contained_tar(tmp_path):
    """guest_tools.sh (the role's packer, which build_tools_disk runs in L1), run for real."""
    image = tmp_path / "tools.tar"
    subprocess.run(["sh", str(l2_tools.PACKER), str(image), "gzip"], capture_output=True, text=True, check=True)
    with tarfile.open(image) as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers()}
        interp = tar.extractfile("interp").read().decode().strip()
    wanted = ["bin/gzip", "lib/libc.so.6", "lib/ld-linux-x86-64.so.2"]
    assert all(members[w].isfile() and members[w].size > 0 for w in wanted), sorted(members)
    assert not any(m.issym() for m in members.values()), "libraries must be dereferenced"
    assert interp.endswith("/ld-linux-x86-64.so.2")
    assert image.stat().st_size % 512 == 0, "a raw disk image is whole sectors"


def test_packer_refuses_a_missing_tool(tmp_path):
    res = subprocess.run(["sh", str(l2_tools.PACKER), str(tmp_path / "t.tar"), "no-such-tool-here"],
                         capture_output=True, text=True, check=False)
    assert res.returncode != 0 and "no-such-tool-here is not installed" in res.stderr
    assert not (tmp_path / "t.tar").exists()


def test_tools_disk_qemu_args_and_guest_setup():
    disk = l2_tools.ToolsDisk(path="/var/lib/vhostblk-l2/tools-fio.tar", interp="/lib64/ld-linux-x86-64.so.2",
                              tools=("fio",), size=80 << 20)
    args = disk.device_args()
    assert "readonly=on" in args[1] and args[3].endswith(",addr=0x07")
    setup = disk.guest_setup()
    assert "disk_at 07" in setup and 'tar -xf "$T" -C /tools' in setup
    assert "ln -sf /tools/lib/ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2" in setup
    assert "LD_LIBRARY_PATH=/tools/lib" in setup


def test_disk_at_finds_a_disk_by_pci_slot(tmp_path):
    sysfs = tmp_path / "sys"
    for name, slot in (("vda", "05"), ("vdb", "04"), ("vdc", "07")):
        dev = sysfs / "devices" / "pci0000:00" / f"0000:00:{slot}.0" / "virtio1" / "block" / name
        dev.mkdir(parents=True)
        (sysfs / "block").mkdir(exist_ok=True)
        (sysfs / "block" / name).symlink_to(dev)
    script = l2_tools.DISK_AT_SH.replace("/sys/block", f"{sysfs}/block") + "disk_at 04; disk_at 07; disk_at 09"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["/dev/vdb", "/dev/vdc"]
