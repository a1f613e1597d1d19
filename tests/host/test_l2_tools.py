# SPDX-License-Identifier: GPL-2.0-or-later
"""The L2 tools disk without a VM: ldd parsing, the staging script (run for real), QEMU arguments."""

import shutil
import subprocess
import tarfile

import pytest
from vmharness import HarnessError, l2_tools

LDD_FIO = """\tlinux-vdso.so.1 (0x00007ffd3b1f2000)
\tlibnuma.so.1 => /lib/x86_64-linux-gnu/libnuma.so.1 (0x00007fd803e9e000)
\tlibrbd.so.1 => /lib/x86_64-linux-gnu/librbd.so.1 (0x00007fd803000000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fd802dc9000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007fd803ec4000)
\tlibceph-common.so.2 => /usr/lib/x86_64-linux-gnu/ceph/libceph-common.so.2 (0x00007fd7f9a00000)
"""


def test_parse_ldd():
    interp, libs = l2_tools.parse_ldd(LDD_FIO)
    assert interp == "/lib64/ld-linux-x86-64.so.2"
    assert libs == ["/lib/x86_64-linux-gnu/libnuma.so.1", "/lib/x86_64-linux-gnu/librbd.so.1",
                    "/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/ceph/libceph-common.so.2"]


def test_parse_ldd_refuses_missing_libraries_and_static_binaries():
    with pytest.raises(HarnessError, match="librbd.so.1"):
        l2_tools.parse_ldd(LDD_FIO.replace("=> /lib/x86_64-linux-gnu/librbd.so.1 (0x00007fd803000000)",
                                           "=> not found"))
    with pytest.raises(HarnessError, match="no dynamic loader"):
        l2_tools.parse_ldd("\tnot a dynamic executable\n")


def test_stage_script_packs_a_self_contained_tar(tmp_path):
    binary = shutil.which("true")
    interp, libs = l2_tools.parse_ldd(subprocess.run(["ldd", binary], capture_output=True, text=True,
                                                     check=True).stdout)
    image = tmp_path / "tools.tar"
    res = subprocess.run(["sh", "-s"], input=l2_tools.stage_script(str(image), [binary], libs + [interp]),
                         capture_output=True, text=True, check=True)
    assert int(res.stdout.split()[-1]) == image.stat().st_size
    with tarfile.open(image) as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers()}
    wanted = ["bin/true", "lib/libc.so.6", "lib/ld-linux-x86-64.so.2"]
    assert all(members[w].isfile() and members[w].size > 0 for w in wanted), sorted(members)
    assert not any(m.issym() for m in members.values()), "libraries must be dereferenced"
    assert image.stat().st_size % 512 == 0, "a raw disk image is whole sectors"


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
