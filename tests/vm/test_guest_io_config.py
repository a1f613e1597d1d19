# SPDX-License-Identifier: GPL-2.0-or-later
"""What an L2 guest sees of a vhost-blk-pci disk's config space, and that it holds (issue 14).

One L2 guest (TCG) in L1 with three vhost-blk-pci disks:

- ``thin``: a sparse file on L1's ext4 (``path=``). The guest prints its queue limits; they must
  be the module's (max_segments = seg_max, max_segment_size * max_segments within the module's
  1 GiB request limit, discard and write-zeroes offered with the filesystem block as
  granularity). It writes 24 MiB of random data, discards [8M, 16M) and zeroes [16M, 32M) with
  BLKZEROOUT; L1 then finds a hole over the discarded range, unwritten extents (fallocate
  ZERO_RANGE, not written zeroes) over the zeroed range that was a hole, zeroes in both, and the
  first 8 MiB intact.
- ``4kn``: a file on an ext4 on a loop device with 4096-byte sectors, ``cache-direct=on``, given
  with the old property name ``drive=``: the guest sees 4096-byte logical blocks and its data
  arrives byte for byte.
- ``fdset``: a file that starts with the qcow2 magic, passed as an fd (``-add-fd`` and
  ``path=/dev/fdset/1``): QEMU warns and starts, the guest reads the magic, then overwrites it.
- ``resize``: a 32 MiB file grown while the guest runs: when the guest has written its marker,
  tests/vmharness/qom_resize.py in L1 asks QEMU over QMP to shrink the disk (refused) and to grow
  it to 48 MiB (qom-set of the device's ``size``); the guest sees the new capacity without a
  reboot and its data past the old end reaches L1's file.

Beside the guest: QEMU run by a user without access to /dev/vhost-blk names the problem.
"""

import json
import re
from pathlib import Path

import pytest
from vmharness import l2
from vmharness.l1_vhostblk import FIRMWARE, FIRMWARE_ARGS, QEMU_IN_L1
from vmharness.l2_pattern import console_value, disk_pattern_sh
from vmharness.l2_tools import GUEST_DIR, build_tools_disk, pci_addr

MIB = 1 << 20
QUEUE_SIZE = 128
MODULE_MAX_BYTES = 1 << 30  # VBLK_MAX_IO_BYTES: the module fails a longer read or write
BACKING = "/var/lib/vhost-blk"
MNT_4KN = "/mnt/vhostblk-4kn"
FDSET_FILE = f"{BACKING}/fdset.raw"
# QEMU behind a wrapper that opens the fdset disk as fd 9 (what a management layer does), with a
# QMP socket, and the resizer waiting beside it
L1_DIR = "/var/lib/vhostblk-l2"
QEMU_WRAPPER = f"{L1_DIR}/qemu-with-fd9.sh"
QMP_SOCK = f"{L1_DIR}/qmp-cfg.sock"
RESIZER = Path(__file__).resolve().parents[1] / "vmharness" / "qom_resize.py"
RESIZE_LOG = "/var/tmp/resize.log"
RESIZE_FROM, RESIZE_TO, RESIZE_SHRINK = 32 * MIB, 48 * MIB, 16 * MIB
DISKS = {
    "thin": {"slot": 0x04, "file": f"{BACKING}/thin.raw", "props": "path={file}"},
    "4kn": {"slot": 0x05, "file": f"{MNT_4KN}/disk.raw", "props": "drive={file},cache-direct=on"},
    "fdset": {"slot": 0x06, "file": FDSET_FILE, "props": "path=/dev/fdset/1"},
    "resize": {"slot": 0x08, "file": f"{BACKING}/resize.raw", "props": "path={file},id=rsz"},
}
LIMITS = ("logical_block_size", "physical_block_size", "max_segments", "max_segment_size", "max_hw_sectors_kb",
          "discard_granularity", "discard_max_hw_bytes", "write_zeroes_max_bytes")
QCOW2_WARNING = "starts with the magic of a qcow/qcow2 image"


def limits_sh(label: str, slot: int) -> str:
    var = "DISK_" + label
    files = " ".join(f"$q/{name}" for name in LIMITS)
    return f"""
{var}=$(disk_at {slot:02x})
q=/sys/block/${{{var}#/dev/}}/queue
echo "LIMITS {label} $(cat {files} | tr '\\n' ' ')"
"""


# util-linux's blkdiscard from the tools disk, by its path: busybox sh runs its own applets first,
# and busybox's blkdiscard has no -z (BLKZEROOUT).
ZEROOUT = f"{GUEST_DIR}/bin/blkdiscard -f -z"
THIN_SH = """
D=$DISK_thin
dd if=/dev/urandom of=/tmp/thin bs=1M count=24 2>/dev/null
dd if=/tmp/thin of=$D bs=1M count=24 conv=notrunc 2>/dev/null
sync
blockdev --flushbufs $D
echo "THIN-SHA thin $(head -c 8388608 /tmp/thin | sha256sum | cut -d' ' -f1)"
out=$(blkdiscard -f -o 8388608 -l 8388608 $D 2>&1); echo "DISCARD-RC thin $? $out"
out=$(""" + ZEROOUT + """ -o 16777216 -l 16777216 $D 2>&1); echo "ZEROOUT-RC thin $? $out"
echo "GUEST-DMESG thin $(dmesg | grep -iE 'vd|virtio|error' | tail -8 | tr '\\n' '|')"
blockdev --flushbufs $D
echo 3 > /proc/sys/vm/drop_caches
echo "ZERO-READ thin $(dd if=$D bs=1M skip=8 count=24 2>/dev/null | tr -d '\\000' | wc -c)"
"""
WRAPPER_SH = f"""#!/bin/sh
exec 9<>{FDSET_FILE}
python3 {L1_DIR}/{RESIZER.name} {QMP_SOCK} {DISKS['resize']['file']} rsz {RESIZE_SHRINK} {RESIZE_TO} \
    > {RESIZE_LOG} 2>&1 9<&- &
exec {QEMU_IN_L1} -qmp unix:{QMP_SOCK},server=on,wait=off "$@"
"""
# the marker, then wait (up to 5 minutes) for the new capacity, then write past the old end
RESIZE_SH = f"""
D=$DISK_resize
n=${{D#/dev/}}
before=$(cat /sys/block/$n/size)
echo "RESIZE-BEFORE resize $before"
printf RESIZE-READY | dd of=$D bs=512 count=1 conv=sync,notrunc 2>/dev/null
sync
blockdev --flushbufs $D
i=0
while [ "$(cat /sys/block/$n/size)" = "$before" ] && [ $i -lt 300 ]; do sleep 1; i=$((i + 1)); done
echo "RESIZE-AFTER resize $(cat /sys/block/$n/size)"
dd if=/dev/urandom of=/tmp/grown bs=1M count=16 2>/dev/null
dd if=/tmp/grown of=$D bs=1M seek={RESIZE_FROM // MIB} conv=notrunc 2>/dev/null
sync
blockdev --flushbufs $D
echo 3 > /proc/sys/vm/drop_caches
echo "RESIZE-SHA resize $(sha256sum < /tmp/grown | cut -d' ' -f1) \
$(dd if=$D bs=1M skip={RESIZE_FROM // MIB} count=16 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "RESIZE-DMESG resize $(dmesg | grep -i 'capacity change' | tail -2 | tr '\\n' '|')"
"""
FDSET_SH = """
echo "MAGIC fdset $(head -c 4 $DISK_fdset | od -An -tx1 | tr -d ' \\n')"
"""


def payload() -> str:
    sh = "".join(limits_sh(label, d["slot"]) for label, d in DISKS.items())
    return sh + THIN_SH + FDSET_SH + disk_pattern_sh("4kn", DISKS["4kn"]["slot"], 8) + disk_pattern_sh(
        "fdset", DISKS["fdset"]["slot"], 4) + RESIZE_SH


def _prepare_backings(hv) -> str:
    """The three backing files in L1; returns the 4Kn loop device."""
    hv.run(f"mkdir -p {BACKING} {MNT_4KN} && rm -f {BACKING}/thin.raw {FDSET_FILE} && "
           f"truncate -s 64M {BACKING}/thin.raw && truncate -s 16M {FDSET_FILE} && "
           f"printf 'QFI\\373\\0\\0\\0\\3' | dd of={FDSET_FILE} conv=notrunc 2>/dev/null")
    loop = hv.run(f"truncate -s 128M {BACKING}/4kn.img && "
                  f"losetup -f --show --sector-size 4096 {BACKING}/4kn.img").stdout.strip()
    hv.run(f"mkfs.ext4 -q -F -b 4096 {loop} && mount {loop} {MNT_4KN} && truncate -s 32M {MNT_4KN}/disk.raw && "
           f"blockdev --getss {loop}")
    hv.run(f"rm -f {DISKS['resize']['file']} {RESIZE_LOG} && truncate -s {RESIZE_FROM} {DISKS['resize']['file']}")
    hv.run(f"mkdir -p {L1_DIR} && cat > {QEMU_WRAPPER} && chmod 755 {QEMU_WRAPPER}", input_text=WRAPPER_SH)
    hv.put([RESIZER], f"{L1_DIR}/")
    return loop


@pytest.fixture(scope="module")
def guest(hv):
    tools = build_tools_disk(hv, tools=("blkdiscard",))
    loop = _prepare_backings(hv)
    try:
        initrd = l2.build_initramfs(hv, tools.guest_setup() + payload(), name="guest-cfg")
        dev = [FIRMWARE, tools.device_args(), ["-add-fd", f"fd=9,set=1,opaque={DISKS['fdset']['file']}"]]
        for d in DISKS.values():
            props = d["props"].format(file=d["file"])
            dev.append(["-device", f"vhost-blk-pci,{props},num-queues=1,queue-size={QUEUE_SIZE},"
                                   f"addr={pci_addr(d['slot'])}"])
        result = l2.run_l2(hv, initrd, dev, timeout=900, qemu=QEMU_WRAPPER)
        assert result.rc == 0, result.console[-3000:]
        yield result.console
    finally:
        hv.run(f"umount {MNT_4KN}; losetup -d {loop}", check=False)


def limits(console: str, label: str) -> dict:
    values = console_value(console, "LIMITS", label).split()
    assert len(values) == len(LIMITS), f"LIMITS {label}: {values}"
    return dict(zip(LIMITS, map(int, values)))


def test_request_limits_are_the_modules(hv, guest, evidence):
    seg_max = int(hv.run("cat /sys/module/vhost_blk/parameters/seg_max").stdout)
    for label in DISKS:
        lim = limits(guest, label)
        evidence(f"guest config {label}: {lim}")
        assert lim["max_segments"] == min(seg_max, QUEUE_SIZE - 2), lim
        # size_max: the module's limit shared out over the segments, in whole pages
        assert lim["max_segment_size"] == (MODULE_MAX_BYTES // lim["max_segments"]) // 4096 * 4096, lim
        assert lim["max_segments"] * lim["max_segment_size"] <= MODULE_MAX_BYTES, lim


def test_discard_and_write_zeroes_offered_and_served(hv, guest, evidence):
    lim = limits(guest, "thin")
    fs_block = int(hv.run(f"stat -f -c %S {BACKING}").stdout)
    assert lim["discard_max_hw_bytes"] > 0 and lim["write_zeroes_max_bytes"] > 0, lim
    assert lim["discard_granularity"] == fs_block, lim
    guest_dmesg = console_value(guest, "GUEST-DMESG", "thin")
    for key in ("DISCARD-RC", "ZEROOUT-RC"):
        rc, _sep, out = console_value(guest, key, "thin").partition(" ")
        assert rc == "0", f"{key} {rc}: {out}; guest dmesg: {guest_dmesg}; L1 dmesg: {hv.run('dmesg').stdout[-1500:]}"
    assert console_value(guest, "ZERO-READ", "thin") == "0", "guest reads non-zero bytes in [8M, 32M)"
    thin = DISKS["thin"]["file"]
    on_l1 = hv.run(f"head -c 8M {thin} | sha256sum | cut -d' ' -f1").stdout.strip()
    assert on_l1 == console_value(guest, "THIN-SHA", "thin"), "first 8 MiB differ in L1"
    assert hv.run(f"cmp -n {24 * MIB} -i {8 * MIB}:0 {thin} /dev/zero", check=False).returncode == 0
    frag = hv.run(f"filefrag -v -b4096 {thin}").stdout
    extents = [(int(m[0]), int(m[1]), m[2]) for m in
               re.findall(r"^\s*\d+:\s+(\d+)\.\.\s*(\d+):(.*)$", frag, re.M)]
    blocks = int(hv.run(f"stat -c %b {thin}").stdout) * 512 // MIB
    evidence(f"guest config thin: after discard [8M,16M) and zeroout [16M,32M), {blocks} MiB allocated in L1; "
             f"extents (4k blocks): {extents}")

    def overlapping(lo, hi):
        return [e for e in extents if e[0] < hi // 4096 and e[1] >= lo // 4096]

    assert not overlapping(8 * MIB, 16 * MIB), f"discarded range still allocated:\n{frag}"
    zeroed = overlapping(24 * MIB, 32 * MIB)
    assert zeroed and all("unwritten" in e[2] for e in zeroed), f"zeroed hole is not unwritten extents:\n{frag}"
    dmesg = hv.run("dmesg").stdout
    assert not re.search(r"vhost_blk.*(unsupported|not supported)", dmesg), dmesg[-2000:]


def test_4kn_backing_with_cache_direct(hv, guest, evidence):
    lim = limits(guest, "4kn")
    assert lim["logical_block_size"] == 4096, lim
    guest_sha, back_sha = console_value(guest, "GUEST-SHA", "4kn"), console_value(guest, "READBACK-SHA", "4kn")
    on_l1 = hv.run(f"head -c 8M {DISKS['4kn']['file']} | sha256sum | cut -d' ' -f1").stdout.strip()
    evidence(f"guest config 4kn (drive=, cache-direct=on, 4096-byte loop sectors): guest lbs "
             f"{lim['logical_block_size']}, wrote {guest_sha}, read back {back_sha}, L1 has {on_l1}")
    assert guest_sha == back_sha == on_l1


def test_fdset_disk_with_qcow2_magic_starts_with_a_warning(hv, guest, evidence):
    assert QCOW2_WARNING in guest, guest[:3000]
    assert console_value(guest, "MAGIC", "fdset") == "514649fb"
    guest_sha = console_value(guest, "GUEST-SHA", "fdset")
    on_l1 = hv.run(f"head -c 4M {FDSET_FILE} | sha256sum | cut -d' ' -f1").stdout.strip()
    warning = next(line for line in guest.splitlines() if QCOW2_WARNING in line)
    evidence(f"guest config fdset (path=/dev/fdset/1): QEMU said '{warning.strip()}'; guest read the magic, "
             f"wrote {guest_sha}, L1 has {on_l1}")
    assert guest_sha == console_value(guest, "READBACK-SHA", "fdset") == on_l1


def test_resize_grows_the_disk_under_the_running_guest(hv, guest, evidence):
    steps = {}
    for line in hv.run(f"cat {RESIZE_LOG}").stdout.splitlines():
        doc = json.loads(line)
        steps[doc["step"]] = doc["reply"]
    shrink = steps.get("shrink", {}).get("error", {}).get("desc", "")
    assert "can grow, not shrink" in shrink, steps
    assert steps.get("grow") == {"return": {}}, steps
    assert steps.get("get") == {"return": RESIZE_TO}, steps
    before, after = (int(console_value(guest, key, "resize")) for key in ("RESIZE-BEFORE", "RESIZE-AFTER"))
    wrote, read_back = console_value(guest, "RESIZE-SHA", "resize").split()
    resize = DISKS["resize"]["file"]
    on_l1 = hv.run(f"tail -c +{RESIZE_FROM + 1} {resize} | sha256sum | cut -d' ' -f1").stdout.strip()
    size_l1 = int(hv.run(f"stat -c %s {resize}").stdout)
    evidence(f"guest config resize (qom-set size): shrink to {RESIZE_SHRINK >> 20} MiB refused ('{shrink}'); "
             f"grown to {RESIZE_TO >> 20} MiB: guest capacity {before} -> {after} sectors without a reboot "
             f"({console_value(guest, 'RESIZE-DMESG', 'resize')}); wrote {wrote} past the old end, read back "
             f"{read_back}, L1 file {size_l1} bytes has {on_l1} there")
    assert (before, after) == (RESIZE_FROM // 512, RESIZE_TO // 512)
    assert wrote == read_back == on_l1 and size_l1 == RESIZE_TO


def test_no_access_to_dev_vhost_blk_is_a_clear_error(hv):
    res = hv.run(f"truncate -s 1M /var/tmp/eacces.raw && chmod 666 /var/tmp/eacces.raw && chmod 755 {QEMU_IN_L1} && "
                 f"timeout 30 runuser -u nobody -- {QEMU_IN_L1} {FIRMWARE_ARGS} -machine q35 -nodefaults "
                 "-display none -device vhost-blk-pci,path=/var/tmp/eacces.raw -S -monitor none 2>&1", check=False)
    assert "cannot open /dev/vhost-blk: Permission denied (the user running QEMU needs read and write" \
        in res.stdout, res.stdout
