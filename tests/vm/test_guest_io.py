# SPDX-License-Identifier: GPL-2.0-or-later
"""L2 guests doing real I/O through vhost-blk-pci in L1, checked byte for byte on the backing.

L1 gets the vhost-blk packages from the signed repository disk (prebuilt module for its kernel)
and the patched QEMU (the x86_64 system emulator built from Debian's source with our series,
packaging/build_qemu_minimal.py). Each case boots an L2 guest (TCG) whose only disk is a
vhost-blk-pci device; the guest writes random data, flushes, drops its caches, reads it back
and prints both checksums; L1 then checksums the backing file or block device.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from vmharness import l2
from vmharness.image import build_image
from vmharness.instance import create, destroy
from vmharness.packages import MOUNT, build_repo_image
from vmharness.paths import REPO_ROOT, state_dir
from vmharness.recipe import get_recipe

QEMU_IN_L1 = "/usr/local/lib/vhostblk-fleet/qemu-system-x86_64"
# Debian keeps QEMU's firmware in three places (its own build sets --firmwarepath to them).
FIRMWARE = ["-L", "/usr/share/qemu", "-L", "/usr/share/seabios", "-L", "/usr/lib/ipxe/qemu"]
FIRMWARE_ARGS = " ".join(FIRMWARE)
MIB = 8

PAYLOAD = f"""
test -b /dev/vda || {{ echo "NO-DISK: /dev/vda is not a block device"; exit 1; }}
echo "QUEUES $(ls /sys/block/vda/mq | wc -l)"
dd if=/dev/urandom of=/tmp/pat bs=1M count={MIB} 2>/dev/null
i=0
while [ $i -lt {MIB} ]; do
  dd if=/tmp/pat of=/dev/vda bs=1M skip=$i seek=$i count=1 conv=notrunc 2>/dev/null &
  i=$((i + 1))
done
wait
sync
blockdev --flushbufs /dev/vda
echo 3 > /proc/sys/vm/drop_caches
echo "GUEST-SHA $(sha256sum /tmp/pat | cut -d' ' -f1)"
echo "READBACK-SHA $(dd if=/dev/vda bs=1M count={MIB} 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""


@pytest.fixture(scope="module")
def hv(tmp_path_factory):
    recipe = get_recipe("debian12")
    image = build_image(recipe)
    repo_img = tmp_path_factory.mktemp("repo") / "repo.img"
    build_repo_image(recipe, image, repo_img)
    res = subprocess.run([sys.executable, str(REPO_ROOT / "packaging" / "build_qemu_minimal.py")],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    qemu = json.loads(res.stdout)
    print(f"patched QEMU: {qemu}")
    inst = create(f"pytest-guest-io-{os.getpid()}", base=state_dir() / "instances", owner=os.getpid(),
                  extra_disks=[repo_img], log=lambda m: print(m, flush=True))
    try:
        inst.run(f"mkdir -p {MOUNT} && mount -o ro /dev/vdb {MOUNT} && "
                 f"cp {MOUNT}/vhostblk-local.gpg /usr/share/keyrings/vhostblk-fleet.gpg && "
                 f"echo 'deb [signed-by=/usr/share/keyrings/vhostblk-fleet.gpg] file:{MOUNT} bookworm main' "
                 "> /etc/apt/sources.list.d/vhostblk-fleet.list && "
                 "apt-get update -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/vhostblk-fleet.list "
                 "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 && "
                 "DEBIAN_FRONTEND=noninteractive apt-get install -y -q vhost-blk-modules-$(uname -r) && "
                 "modprobe vhost_blk && modinfo -n vhost_blk", timeout=900)
        inst.run(f"mkdir -p {os.path.dirname(QEMU_IN_L1)}")
        inst.put([qemu["binary"]], QEMU_IN_L1)
        devices = inst.run(f"{QEMU_IN_L1} {FIRMWARE_ARGS} -device help").stdout
        assert "vhost-blk-pci" in devices, devices
        yield inst
    finally:
        destroy(inst.dir)


RESULTS = {}


def _shas(console):
    guest = re.search(r"GUEST-SHA ([0-9a-f]{64})", console)
    back = re.search(r"READBACK-SHA ([0-9a-f]{64})", console)
    queues = re.search(r"QUEUES (\d+)", console)
    assert guest and back and queues, console[-3000:]
    return guest.group(1), back.group(1), int(queues.group(1))


def _run_guest(hv, backing, queues, name):
    initrd = l2.build_initramfs(hv, PAYLOAD, name=name)
    smp = queues  # virtio_blk uses at most one virtqueue per guest CPU
    dev = [[*FIRMWARE, "-smp", str(smp)],
           ["-device", f"vhost-blk-pci,drive={backing},num-queues={queues},queue-size=128"]]
    result = l2.run_l2(hv, initrd, dev, timeout=600, qemu=QEMU_IN_L1)
    assert result.rc == 0, result.console[-3000:]
    guest, back, seen_queues = _shas(result.console)
    assert seen_queues == queues, f"guest sees {seen_queues} queue(s), expected {queues}"
    on_l1 = hv.run(f"head -c {MIB}M {backing} | sha256sum | cut -d' ' -f1").stdout.strip()
    RESULTS[name] = (guest, back, on_l1)
    print(f"{name}: guest wrote {guest}, guest read back {back}, L1 backing has {on_l1}, "
          f"guest sees {seen_queues} queue(s), L2 under {result.accel}")
    assert guest == back == on_l1, "guest data, guest read-back and the backing in L1 must be identical"
    dmesg = hv.run("dmesg").stdout
    assert not re.search(r"BUG:|WARNING:|Oops|general protection", dmesg), dmesg[-3000:]


def test_missing_module_is_a_clear_error(hv):
    hv.run("rmmod vhost_blk")
    try:
        res = hv.run(f"truncate -s 1M /var/tmp/x.raw; {QEMU_IN_L1} {FIRMWARE_ARGS} -machine q35 -nodefaults "
                     "-display none -device vhost-blk-pci,drive=/var/tmp/x.raw -S -monitor none 2>&1 & "
                     "sleep 5; kill $! 2>/dev/null; wait", check=False)
        assert "is the vhost_blk module loaded" in res.stdout, res.stdout
    finally:
        hv.run("modprobe vhost_blk")


def test_guest_io_file_backend(hv, queues=4):
    backing = f"/var/lib/vhost-blk/file-q{queues}.raw"
    hv.run(f"mkdir -p /var/lib/vhost-blk && rm -f {backing} && truncate -s 64M {backing}")
    _run_guest(hv, backing, queues, f"file-q{queues}")


def test_guest_io_block_device_backend(hv):
    loop = hv.run("truncate -s 64M /var/lib/vhost-blk/loop.img && "
                  "losetup -f --show --direct-io=on /var/lib/vhost-blk/loop.img").stdout.strip()
    try:
        _run_guest(hv, loop, 1, "blockdev-q1")
    finally:
        hv.run(f"losetup -d {loop}", check=False)


def test_module_released_after_guests_exit(hv):
    assert RESULTS, "no guest ran"
    assert not hv.run("pgrep -f qemu-system-x86_64", check=False).stdout.strip()
    assert hv.run("cat /sys/module/vhost_blk/refcnt").stdout.strip() == "0"
    hv.run("rmmod vhost_blk && modprobe vhost_blk")
