# SPDX-License-Identifier: GPL-2.0-or-later
"""Backing files and block devices for the tests, and size parsing."""

import os
import re
import stat

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.I)
    if not m:
        raise ValueError(f"bad size {text!r} (use e.g. 512K, 64M, 1G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def open_backend(path, size=None, readonly=False, create=True, direct=False):
    """Open a file (created/extended to ``size`` when given) or a block device.

    Returns (fd, size_bytes, is_blockdev).
    """
    flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
    if direct:
        flags |= os.O_DIRECT
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISBLK(st.st_mode):
        fd = os.open(path, flags)
        return fd, os.lseek(fd, 0, os.SEEK_END), True
    if st is None and not create:
        raise FileNotFoundError(path)
    fd = os.open(path, flags | (0 if readonly else os.O_CREAT), 0o600)
    cur = os.fstat(fd).st_size
    if size is not None and cur < size and not readonly:
        os.ftruncate(fd, size)
        cur = size
    return fd, cur, False


def host_topology(st):
    """(physical block size, optimal I/O size) the module reports for a backend of stat ``st``:
    the block device's, or for a file its filesystem device's, else (512, 0)."""
    dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    base = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for q in (f"{base}/queue", f"{base}/../queue"):
        try:
            with open(f"{q}/physical_block_size") as f1, open(f"{q}/optimal_io_size") as f2:
                return max(int(f1.read()), 512), int(f2.read())
        except OSError:
            continue
    return 512, 0
