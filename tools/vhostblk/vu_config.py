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

# Largest segment the guest may build (the module splits nothing; one page-aligned segment of a
# request of max_sectors is the natural bound).
SECTOR = 512


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
    v.update(capacity=info["capacity"], seg_max=info["seg_max"], blk_size=blk,
             size_max=min(max_bytes, 1 << 31) if max_bytes else 0,
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
