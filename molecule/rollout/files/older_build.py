# SPDX-License-Identifier: GPL-2.0-or-later
"""Write a copy of the installed vhost_blk.ko that the kernel reports as another build.

The copy's srcversion (the checksum of its sources that /sys/module/vhost_blk/srcversion shows) is
replaced by a different one of the same length, as an older build of the module would have: the
kmod role must then see the loaded module as outdated. Usage: older_build.py SRC.ko DEST.ko
"""

import re
import sys


def main(src, dest):
    data = open(src, "rb").read()
    found = re.findall(rb"srcversion=([0-9A-F]{8,32})\0", data)
    if len(found) != 1:
        sys.exit(f"{src}: expected one srcversion in .modinfo, found {len(found)}")
    old = found[0]
    new = bytes(reversed(old))
    if new == old:  # a palindrome: change its first digit
        new = (b"1" if old[:1] == b"0" else b"0") + old[1:]
    open(dest, "wb").write(data.replace(b"srcversion=" + old + b"\0", b"srcversion=" + new + b"\0"))
    print(f"{old.decode()} -> {new.decode()}")


if __name__ == "__main__":
    main(*sys.argv[1:])
