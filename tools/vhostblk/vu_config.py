# SPDX-License-Identifier: GPL-2.0-or-later
"""virtio_blk_config for GET_CONFIG, filled from the module's VHOST_BLK_GET_INFO.

The vhost-user front end (QEMU's vhost-user-blk) takes the guest's config space from the back
end, so the limits the guest sees are the module's own: a guest never builds a request the
module refuses, and the block size is the backend's.
"""

import struct

from . import virtio as V

# struct virtio_blk_config (virtio 1.2, 5.2.4), little-endian, 60 bytes up to write_zeroes_may_unmap
CONFIG = struct.Struct("<QII HBB I BBHI BBH III II B3x")
FIELDS = ("capacity", "size_max", "seg_max", "cylinders", "heads", "sectors", "blk_size",
          "physical_block_exp", "alignment_offset", "min_io_size", "opt_io_size",
          "wce", "unused0", "num_queues",
          "max_discard_sectors", "max_discard_seg", "discard_sector_alignment",
          "max_write_zeroes_sectors", "max_write_zeroes_seg", "write_zeroes_may_unmap")

# Features that only describe the config space: the back end offers them on top of the module's,
# and never passes them to the kernel (which does not know them).
CONFIG_ONLY_FEATURES = V.bit(V.BLK_F_SIZE_MAX) | V.bit(V.BLK_F_TOPOLOGY)

SECTOR = 512
PAGE = 4096
# size_max x seg_max bounds what a guest puts in one request. Firmware computes it too: SeaBIOS
# (Debian 12's 1.16, which reads the disk while the guest kernel boots) multiplies the two in 32
# bits and splits its I/O in chunks of (u16)(product / blk_size) blocks, so a product of 32 MiB or
# more can wrap to 0 and the firmware then loops forever on empty requests (seen with size_max 1 GiB
# and seg_max 126). Every request a guest builds is kept below FIRMWARE_REQUEST_BYTES.
FIRMWARE_REQUEST_BYTES = 32 << 20


def request_limits(max_bytes, seg_max, blk_size):
    """(seg_max, size_max) to offer: at most the module's segments, each a power of two of at
    least a page, such that a full request stays within the module's limit and below what
    firmware can count in 16-bit blocks."""
    below = min(max_bytes or FIRMWARE_REQUEST_BYTES, FIRMWARE_REQUEST_BYTES - blk_size)
    segs = max(1, min(seg_max, below // PAGE))
    size = PAGE
    while size * 2 * segs <= below:
        size *= 2
    return segs, size


def _log2(n):
    return n.bit_length() - 1 if n > 0 and n & (n - 1) == 0 else 0


def config_values(info, num_queues, discard=False, write_zeroes=False):
    """Field values of virtio_blk_config for the module's info dict (GET_INFO) and the
    DISCARD / WRITE_ZEROES the module serves."""
    blk = info.get("blk_size") or SECTOR
    phys = info.get("phys_blk_size") or blk
    max_bytes = (info.get("max_sectors") or 0) * SECTOR
    dwz_seg = info.get("max_dwz_seg") or 1
    v = dict.fromkeys(FIELDS, 0)
    seg_max, size_max = request_limits(max_bytes, info["seg_max"], blk)
    v.update(capacity=info["capacity"], seg_max=seg_max, blk_size=blk, size_max=size_max,
             physical_block_exp=_log2(phys // blk) if phys >= blk else 0,
             min_io_size=1, opt_io_size=(info.get("opt_io_size") or 0) // blk,
             num_queues=num_queues)
    if discard:
        v.update(max_discard_sectors=info.get("max_discard_sectors") or (max_bytes // SECTOR),
                 max_discard_seg=dwz_seg,
                 discard_sector_alignment=max((info.get("discard_granularity") or blk) // SECTOR, 1))
    if write_zeroes:
        v.update(max_write_zeroes_sectors=info.get("max_write_zeroes_sectors") or (max_bytes // SECTOR),
                 max_write_zeroes_seg=dwz_seg, write_zeroes_may_unmap=0)
    return v


def config_bytes(values):
    return CONFIG.pack(*(values[f] for f in FIELDS))


def config_slice(values, offset, size):
    """``size`` bytes of the config space from ``offset``; zero beyond the fields we know."""
    data = config_bytes(values)
    data += bytes(max(0, offset + size - len(data)))
    return data[offset:offset + size]
