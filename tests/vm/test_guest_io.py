# SPDX-License-Identifier: GPL-2.0-or-later
"""L2 guests doing real I/O through vhost-blk-pci in L1, checked byte for byte on the backing.

L1 gets the vhost-blk packages from the signed repository disk (prebuilt module for its kernel)
and the patched QEMU (the x86_64 system emulator built from Debian's source with our series,
packaging/build_qemu_minimal.py). One L2 guest (TCG) gets two vhost-blk-pci disks, a
regular file with four queues and a loop block device with one (and a read-only virtio-blk disk
with fio, vmharness.l2_tools); on each disk the guest writes random data, flushes, drops its
caches, reads it back and prints both checksums; L1 then checksums the backing file and the
block device. After the patterns the guest runs a short fio randwrite with crc32c verify over
both disks; L1 replays it with verify_only on the backings.
"""

import re

import pytest
from vmharness import l2, l2_fio
from vmharness.l1_vhostblk import FIRMWARE, FIRMWARE_ARGS, QEMU_IN_L1
from vmharness.l2_pattern import console_value, disk_pattern_sh
from vmharness.l2_tools import DISK_AT_SH, build_tools_disk, pci_addr

MIB = 8
# Two vhost-blk disks in one guest (one L2 boot, one fio start: each costs minutes under nested
# TCG): a regular file with four queues and a loop block device with one.
DISKS = {"file-q4": {"slot": 0x04, "queues": 4}, "blockdev-q1": {"slot": 0x05, "queues": 1}}
SMP = 4  # virtio_blk uses at most one virtqueue per guest CPU
# fio's region starts after the sha256 pattern, so the byte-for-byte check stays valid; one job
# over both disks (fio splits size between the files given as A:B, 2 MiB each).
FIO = {"filename": "$DISK_file_q4:$DISK_blockdev_q1", "offset": "16M", "size": "4M", "rw": "randwrite",
       "bs": "4k", "iodepth": 16, "ioengine": "libaio", "direct": 1, "verify": "crc32c", "verify_fatal": 1}
FIO_BYTES = 4 << 20


PAYLOAD = DISK_AT_SH + "".join(disk_pattern_sh(label, d["slot"], MIB) for label, d in DISKS.items())
FIO_CHECK = ('echo "PHASE fio-start $(cut -d" " -f1 /proc/uptime)"\n' + l2_fio.fio_sh("verify", FIO)
             + "".join(f"blockdev --flushbufs $DISK_{label.replace('-', '_')}\n" for label in DISKS)
             + 'echo "PHASE fio-done $(cut -d" " -f1 /proc/uptime)"\n')
TOOLS_DONE = 'echo "PHASE tools-ready $(cut -d" " -f1 /proc/uptime)"\n'


@pytest.fixture(scope="module")
def tools(hv):
    disk = build_tools_disk(hv)
    print(f"L2 tools disk: {disk.path}, {disk.size >> 20} MiB")
    return disk


@pytest.fixture(scope="module")
def guest(hv, tools):
    """Boot the L2 guest once; its console and the backings of both disks in L1."""
    backings = {"file-q4": "/var/lib/vhost-blk/file-q4.raw"}
    hv.run(f"mkdir -p /var/lib/vhost-blk && rm -f {backings['file-q4']} && truncate -s 64M {backings['file-q4']}")
    backings["blockdev-q1"] = hv.run("truncate -s 64M /var/lib/vhost-blk/loop.img && "
                                     "losetup -f --show --direct-io=on /var/lib/vhost-blk/loop.img").stdout.strip()
    try:
        initrd = l2.build_initramfs(hv, tools.guest_setup() + TOOLS_DONE + PAYLOAD + FIO_CHECK, name="guest-io")
        dev = [[*FIRMWARE, "-smp", str(SMP)], tools.device_args()]
        for label, d in DISKS.items():
            dev.append(["-device", f"vhost-blk-pci,drive={backings[label]},num-queues={d['queues']},"
                                   f"queue-size=128,addr={pci_addr(d['slot'])}"])
        result = l2.run_l2(hv, initrd, dev, timeout=1200, qemu=QEMU_IN_L1)
        phases = dict(re.findall(r"PHASE (\S+) ([0-9.]+)", result.console))
        print(f"L2 under {result.accel}; phases (guest uptime, s): {phases}")
        assert result.rc == 0, result.console[-3000:]
        yield result.console, backings
    finally:
        hv.run(f"losetup -d {backings['blockdev-q1']}", check=False)


RESULTS = {}


@pytest.mark.parametrize("label", sorted(DISKS))
def test_guest_io_byte_for_byte(hv, guest, label, evidence):
    console, backings = guest
    guest_sha, back_sha = console_value(console, "GUEST-SHA", label), console_value(console, "READBACK-SHA", label)
    seen_queues = int(console_value(console, "QUEUES", label))
    on_l1 = hv.run(f"head -c {MIB}M {backings[label]} | sha256sum | cut -d' ' -f1").stdout.strip()
    RESULTS[label] = (guest_sha, back_sha, on_l1)
    evidence(f"guest I/O {label} ({backings[label]}): guest wrote {guest_sha}, read back {back_sha}, "
             f"L1 backing has {on_l1}; guest sees {seen_queues} queue(s)")
    assert seen_queues == DISKS[label]["queues"], f"guest sees {seen_queues} queue(s)"
    assert guest_sha == back_sha == on_l1, "guest data, guest read-back and the backing in L1 must be identical"
    dmesg = hv.run("dmesg").stdout
    assert not re.search(r"BUG:|WARNING:|Oops|general protection", dmesg), dmesg[-3000:]


def test_fio_crc32c_verify_in_guest_and_on_backing(hv, guest, evidence):
    """fio's crc32c verify passed in the guest, and the same blocks verify on L1's backings."""
    console, backings = guest
    runs = l2_fio.parse_runs(console)
    assert "verify" in runs, console[-3000:]
    problems = l2_fio.verify_problems(runs["verify"], FIO_BYTES)
    assert not problems, f"fio verify in the guest: {problems}"
    w = l2_fio.point(runs["verify"], "write")
    evidence(f"guest I/O fio: randwrite 4k qd16 {FIO_BYTES >> 20} MiB over both disks, crc32c verify passed in "
             f"the guest ({w['iops']:.0f} IOPS, clat {w['clat_us']:.0f} us under nested TCG)")
    # fio replays the same job on L1 and checks each block's header and crc32c on the backings.
    files = ":".join(backings[label] for label in DISKS)
    on_l1 = hv.run(l2_fio.fio_sh("verify", {**FIO, "filename": files, "verify_only": 1}), timeout=300).stdout
    problems = l2_fio.verify_problems(l2_fio.parse_runs(on_l1)["verify"], FIO_BYTES)
    assert not problems, f"fio verify_only on the backings in L1: {problems}"
    evidence(f"guest I/O fio: verify_only replay on the backings in L1 ({files}) passed")


def test_missing_module_is_a_clear_error(hv):
    hv.run("rmmod vhost_blk")
    try:
        res = hv.run(f"truncate -s 1M /var/tmp/x.raw; {QEMU_IN_L1} {FIRMWARE_ARGS} -machine q35 -nodefaults "
                     "-display none -device vhost-blk-pci,drive=/var/tmp/x.raw -S -monitor none 2>&1 & "
                     "sleep 5; kill $! 2>/dev/null; wait", check=False)
        assert "is the vhost_blk module loaded" in res.stdout, res.stdout
    finally:
        hv.run("modprobe vhost_blk")


def test_module_released_after_guests_exit(hv):
    assert RESULTS, "no guest ran"
    assert not hv.run("pgrep -f qemu-system-x86_64", check=False).stdout.strip()
    assert hv.run("cat /sys/module/vhost_blk/refcnt").stdout.strip() == "0"
    hv.run("rmmod vhost_blk && modprobe vhost_blk")
