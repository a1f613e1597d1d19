# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""Image format detection for vhost-blk backing files.

vhost-blk serves guest requests from the kernel straight to the backing file or
block device, so only raw images work: every container format (qcow2, vmdk, ...)
would be handed to the guest as its on-disk bytes. This file recognises the
common container formats by their magic bytes; qemu-img is not needed.
"""


import os
import stat

# How many bytes of the image header are read (the VDI signature sits at 0x40).
HEADER_BYTES = 512

# (format name, offset, magic bytes).  Checked in this order.
MAGICS = (
    ('qcow2', 0, b'QFI\xfb'),                        # qcow version 1, 2 and 3
    ('qed', 0, b'QED\x00'),
    ('vmdk', 0, b'KDMV'),                            # sparse extent
    ('vmdk', 0, b'COWD'),                            # ESX sparse extent
    ('vmdk', 0, b'# Disk DescriptorFile'),           # text descriptor
    ('vdi', 0x40, b'\x7f\x10\xda\xbe'),              # 0xbeda107f, little endian
    ('vhdx', 0, b'vhdxfile'),
    ('vpc', 0, b'conectix'),                         # dynamic VHD (header copy at 0)
    ('luks', 0, b'LUKS\xba\xbe'),
    ('parallels', 0, b'WithoutFreeSpace'),
    ('parallels', 0, b'WithouFreSpacExt'),
    ('cloop', 0, b'#!/bin/sh\n#V2.0 Format'),
    ('bochs', 0, b'Bochs Virtual HD Image'),
)


def detect_format(header):
    """Return the container format named by ``header`` (bytes), or 'raw'."""
    for name, offset, magic in MAGICS:
        if header[offset:offset + len(magic)] == magic:
            return name
    return 'raw'


def read_header(path, size=HEADER_BYTES):
    """Read the first ``size`` bytes of ``path`` (short files give fewer)."""
    with open(path, 'rb') as handle:
        return handle.read(size)


def probe_image(path):
    """Describe ``path``: a dict with kind ('file', 'block' or 'other'), size and format.

    Raises OSError when the path cannot be stat-ed or read.
    """
    st = os.stat(path)
    if stat.S_ISREG(st.st_mode):
        kind = 'file'
        size = st.st_size
    elif stat.S_ISBLK(st.st_mode):
        kind = 'block'
        size = None
    else:
        return {'kind': 'other', 'size': None, 'format': None}
    return {'kind': kind, 'size': size, 'format': detect_format(read_header(path))}
