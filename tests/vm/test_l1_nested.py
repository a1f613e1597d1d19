# SPDX-License-Identifier: GPL-2.0-or-later
"""L1 gives nested guests what they need: a working /dev/kvm, and L2 guests that do real I/O."""

import re

from vmharness import l2

PAYLOAD = """
test -b /dev/vda || { echo "NO-DISK: /dev/vda is not a block device"; exit 1; }
dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=1M conv=fsync 2>/dev/null || exit 3
blockdev --flushbufs /dev/vda
echo 3 > /proc/sys/vm/drop_caches
echo "GUEST-SHA $(sha256sum /tmp/pat | cut -d' ' -f1)"
echo "READBACK-SHA $(dd if=/dev/vda bs=1M count=4 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""


def test_kvm_amd_gives_dev_kvm(l1):
    assert l2.ensure_nested_kvm(l1), l1.run("dmesg | tail -20", check=False).stdout
    assert l1.run("stat -c %F /dev/kvm").stdout.strip() == "character special file"


def _shas(console):
    guest = re.search(r"GUEST-SHA ([0-9a-f]{64})", console)
    back = re.search(r"READBACK-SHA ([0-9a-f]{64})", console)
    assert guest and back, console[-3000:]
    return guest.group(1), back.group(1)


def test_l2_boots_under_nested_kvm_or_reports_fallback(l1):
    """Nested KVM is the fast path; it is known to misbehave under TCG L1 (see BRIEF), so this
    records which accelerator an L2 boot got rather than gating on KVM."""
    initrd = l2.build_initramfs(l1, "echo hello-from-l2", name="probe")
    result = l2.run_l2(l1, initrd, [], accel="auto", timeout=300)
    print(f"L2 probe ran under {result.accel} (fell back from KVM: {result.fell_back})")
    assert result.rc == 0 and "hello-from-l2" in result.console


def test_l2_guest_writes_virtio_blk_byte_for_byte(l1):
    initrd = l2.build_initramfs(l1, PAYLOAD, name="nested-io")
    l1.run("truncate -s 16M /var/tmp/l2disk.raw")
    disk = [["-drive", "file=/var/tmp/l2disk.raw,format=raw,if=none,id=d0,cache=none,aio=threads"],
            ["-device", "virtio-blk-pci,drive=d0"]]
    result = l2.run_l2(l1, initrd, disk, accel="tcg", timeout=600)
    print(f"L2 ran under {result.accel} (fell back from KVM: {result.fell_back})")
    assert result.rc == 0, result.console[-3000:]
    guest, back = _shas(result.console)
    host = l1.run("head -c 4M /var/tmp/l2disk.raw | sha256sum | cut -d' ' -f1").stdout.strip()
    print(f"guest wrote {guest}, guest read back {back}, L1 backing file has {host}")
    assert guest == back == host
