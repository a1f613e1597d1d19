# SPDX-License-Identifier: GPL-2.0-or-later
"""L2 guests doing real I/O through vhost-blk-pci in L1, checked byte for byte on the backing.

L1 gets the vhost-blk packages from the signed repository disk (prebuilt module for its kernel)
and the patched QEMU (the x86_64 system emulator built from Debian's source with our series,
packaging/build_qemu_minimal.py). Each case boots an L2 guest (TCG) whose only disk is a
vhost-blk-pci device (and a read-only virtio-blk disk with fio, vmharness.l2_tools); the guest
writes random data, flushes, drops its caches, reads it back and prints both checksums; L1 then
checksums the backing file or block device. After the pattern the guest runs a short fio
randwrite with crc32c verify; L1 replays it with verify_only on the backing.
"""

import os
import re

import pytest
from vmharness import l2, l2_fio
from vmharness.l1_vhostblk import FIRMWARE, FIRMWARE_ARGS, QEMU_IN_L1, vhostblk_l1
from vmharness.l2_tools import DISK_AT_SH, build_tools_disk, pci_addr

MIB = 8
DISK_SLOT = 0x04  # PCI slot of the vhost-blk disk in L2
# fio's region starts after the sha256 pattern, so the byte-for-byte check stays valid.
FIO = {"filename": "$DISK", "offset": "16M", "size": "2M", "rw": "randwrite", "bs": "4k", "iodepth": 16,
       "ioengine": "libaio", "direct": 1, "verify": "crc32c", "verify_fatal": 1}
FIO_BYTES = 2 << 20

PAYLOAD = DISK_AT_SH + f"""
DISK=$(disk_at {DISK_SLOT:02x})
test -b "$DISK" || {{ echo "NO-DISK: no block device at PCI slot {DISK_SLOT:02x}"; exit 1; }}
d=${{DISK#/dev/}}
echo "QUEUES $(ls /sys/block/$d/mq | wc -l)"
dd if=/dev/urandom of=/tmp/pat bs=1M count={MIB} 2>/dev/null
i=0
while [ $i -lt {MIB} ]; do
  dd if=/tmp/pat of=$DISK bs=1M skip=$i seek=$i count=1 conv=notrunc 2>/dev/null &
  i=$((i + 1))
done
wait
sync
blockdev --flushbufs $DISK
echo 3 > /proc/sys/vm/drop_caches
echo "GUEST-SHA $(sha256sum /tmp/pat | cut -d' ' -f1)"
echo "READBACK-SHA $(dd if=$DISK bs=1M count={MIB} 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""
FIO_CHECK = ('echo "PHASE fio-start $(cut -d" " -f1 /proc/uptime)"\nfio --version\n'
             'echo "PHASE fio-version-done $(cut -d" " -f1 /proc/uptime)"\n' + l2_fio.fio_sh("verify", FIO)
             + 'blockdev --flushbufs $DISK\necho "PHASE fio-done $(cut -d" " -f1 /proc/uptime)"\n')
TOOLS_DONE = 'echo "PHASE tools-ready $(cut -d" " -f1 /proc/uptime)"\n'


@pytest.fixture(scope="module")
def hv(tmp_path_factory):
    with vhostblk_l1(f"pytest-guest-io-{os.getpid()}", tmp_path_factory.mktemp("repo"),
                     log=lambda m: print(m, flush=True)) as inst:
        yield inst


@pytest.fixture(scope="module")
def tools(hv):
    disk = build_tools_disk(hv)
    print(f"L2 tools disk: {disk.path}, {disk.size >> 20} MiB")
    return disk


RESULTS = {}


def _shas(console):
    guest = re.search(r"GUEST-SHA ([0-9a-f]{64})", console)
    back = re.search(r"READBACK-SHA ([0-9a-f]{64})", console)
    queues = re.search(r"QUEUES (\d+)", console)
    assert guest and back and queues, console[-3000:]
    return guest.group(1), back.group(1), int(queues.group(1))


def _run_guest(hv, tools, backing, queues, name):
    initrd = l2.build_initramfs(hv, tools.guest_setup() + TOOLS_DONE + PAYLOAD + FIO_CHECK, name=name)
    smp = queues  # virtio_blk uses at most one virtqueue per guest CPU
    dev = [[*FIRMWARE, "-smp", str(smp)],
           ["-device", f"vhost-blk-pci,drive={backing},num-queues={queues},queue-size=128,"
                       f"addr={pci_addr(DISK_SLOT)}"],
           tools.device_args()]
    result = l2.run_l2(hv, initrd, dev, timeout=900, qemu=QEMU_IN_L1)
    assert result.rc == 0, result.console[-3000:]
    guest, back, seen_queues = _shas(result.console)
    assert seen_queues == queues, f"guest sees {seen_queues} queue(s), expected {queues}"
    on_l1 = hv.run(f"head -c {MIB}M {backing} | sha256sum | cut -d' ' -f1").stdout.strip()
    RESULTS[name] = (guest, back, on_l1)
    print(f"{name}: guest wrote {guest}, guest read back {back}, L1 backing has {on_l1}, "
          f"guest sees {seen_queues} queue(s), L2 under {result.accel}")
    assert guest == back == on_l1, "guest data, guest read-back and the backing in L1 must be identical"
    _check_fio(hv, result.console, backing, name)
    dmesg = hv.run("dmesg").stdout
    assert not re.search(r"BUG:|WARNING:|Oops|general protection", dmesg), dmesg[-3000:]


def _check_fio(hv, console, backing, name):
    """fio's crc32c verify passed in the guest, and the same blocks verify on L1's backing."""
    runs = l2_fio.parse_runs(console)
    assert "verify" in runs, console[-3000:]
    problems = l2_fio.verify_problems(runs["verify"], FIO_BYTES)
    assert not problems, f"fio verify in the guest: {problems}"
    w = l2_fio.point(runs["verify"], "write")
    phases = dict(re.findall(r"PHASE (\S+) ([0-9.]+)", console))
    elapsed = l2_fio.job(runs["verify"]).get("elapsed")
    print(f"{name}: fio randwrite 4k qd16 {FIO_BYTES >> 20} MiB + crc32c verify in the guest: "
          f"{w['iops']:.0f} IOPS, clat {w['clat_us']:.0f} us; fio elapsed {elapsed} s; guest uptime at {phases}")
    # fio replays the same job on L1 and checks each block's header and crc32c on the backing.
    on_l1 = hv.run(l2_fio.fio_sh("verify", {**FIO, "filename": backing, "verify_only": 1}), timeout=300).stdout
    problems = l2_fio.verify_problems(l2_fio.parse_runs(on_l1)["verify"], FIO_BYTES)
    assert not problems, f"fio verify_only on the backing in L1: {problems}"


def test_missing_module_is_a_clear_error(hv):
    hv.run("rmmod vhost_blk")
    try:
        res = hv.run(f"truncate -s 1M /var/tmp/x.raw; {QEMU_IN_L1} {FIRMWARE_ARGS} -machine q35 -nodefaults "
                     "-display none -device vhost-blk-pci,drive=/var/tmp/x.raw -S -monitor none 2>&1 & "
                     "sleep 5; kill $! 2>/dev/null; wait", check=False)
        assert "is the vhost_blk module loaded" in res.stdout, res.stdout
    finally:
        hv.run("modprobe vhost_blk")


def test_guest_io_file_backend(hv, tools, queues=4):
    backing = f"/var/lib/vhost-blk/file-q{queues}.raw"
    hv.run(f"mkdir -p /var/lib/vhost-blk && rm -f {backing} && truncate -s 64M {backing}")
    _run_guest(hv, tools, backing, queues, f"file-q{queues}")


def test_guest_io_block_device_backend(hv, tools):
    loop = hv.run("truncate -s 64M /var/lib/vhost-blk/loop.img && "
                  "losetup -f --show --direct-io=on /var/lib/vhost-blk/loop.img").stdout.strip()
    try:
        _run_guest(hv, tools, loop, 1, "blockdev-q1")
    finally:
        hv.run(f"losetup -d {loop}", check=False)


def test_module_released_after_guests_exit(hv):
    assert RESULTS, "no guest ran"
    assert not hv.run("pgrep -f qemu-system-x86_64", check=False).stdout.strip()
    assert hv.run("cat /sys/module/vhost_blk/refcnt").stdout.strip() == "0"
    hv.run("rmmod vhost_blk && modprobe vhost_blk")
