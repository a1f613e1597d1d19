# SPDX-License-Identifier: GPL-2.0-or-later
"""The byte-for-byte disk check an L2 payload runs on each test disk, and its console parser.

The guest writes MIB MiB of random data (one dd per MiB, in parallel, so every queue gets work),
flushes, drops its caches, reads the disk back and prints both checksums; the test then checksums
the backing in L1. The payload finds the disk by PCI slot (l2_tools.DISK_AT_SH) and leaves its
path in $DISK_<label>.
"""

import re


def disk_pattern_sh(label: str, slot: int, mib: int) -> str:
    var = "DISK_" + label.replace("-", "_")
    return f"""
{var}=$(disk_at {slot:02x})
DISK=${var}
test -b "$DISK" || {{ echo "NO-DISK: no block device at PCI slot {slot:02x}"; exit 1; }}
d=${{DISK#/dev/}}
echo "QUEUES {label} $(ls /sys/block/$d/mq | wc -l)"
echo "SERIAL {label} $(cat /sys/block/$d/serial 2>/dev/null)"
dd if=/dev/urandom of=/tmp/pat bs=1M count={mib} 2>/dev/null
i=0
while [ $i -lt {mib} ]; do
  dd if=/tmp/pat of=$DISK bs=1M skip=$i seek=$i count=1 conv=notrunc 2>/dev/null &
  i=$((i + 1))
done
wait
sync
blockdev --flushbufs $DISK
echo 3 > /proc/sys/vm/drop_caches
echo "GUEST-SHA {label} $(sha256sum /tmp/pat | cut -d' ' -f1)"
echo "READBACK-SHA {label} $(dd if=$DISK bs=1M count={mib} 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""


def console_value(console: str, key: str, label: str) -> str:
    """The value the payload printed as ``KEY label value`` ('' when it printed nothing after it)."""
    m = re.search(rf"^{key} {label}(?: (.*))?$", console, re.M)
    assert m, f"no {key} for {label} on the console:\n{console[-3000:]}"
    return (m.group(1) or "").strip()
