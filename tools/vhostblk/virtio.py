# SPDX-License-Identifier: GPL-2.0-or-later
"""Virtio 1.x and virtio-blk constants and request layouts (spec, little-endian)."""

import struct

# Feature bits (virtio 1.x spec, section 6 and 5.2.3)
F_ANY_LAYOUT = 27
F_INDIRECT_DESC = 28
F_EVENT_IDX = 29
F_VERSION_1 = 32
F_ACCESS_PLATFORM = 33
VHOST_F_LOG_ALL = 26
VHOST_VRING_F_LOG = 0           # vhost_vring_addr.flags: log the used ring's writes at log_guest_addr

BLK_F_SIZE_MAX = 1
BLK_F_SEG_MAX = 2
BLK_F_GEOMETRY = 4
BLK_F_RO = 5
BLK_F_BLK_SIZE = 6
BLK_F_FLUSH = 9
BLK_F_TOPOLOGY = 10
BLK_F_CONFIG_WCE = 11
BLK_F_MQ = 12
BLK_F_DISCARD = 13
BLK_F_WRITE_ZEROES = 14

FEATURE_NAMES = {
    F_ANY_LAYOUT: "ANY_LAYOUT", F_INDIRECT_DESC: "INDIRECT_DESC", F_EVENT_IDX: "EVENT_IDX",
    F_VERSION_1: "VERSION_1", F_ACCESS_PLATFORM: "ACCESS_PLATFORM", VHOST_F_LOG_ALL: "LOG_ALL",
    BLK_F_SIZE_MAX: "BLK_SIZE_MAX", BLK_F_SEG_MAX: "BLK_SEG_MAX", BLK_F_GEOMETRY: "BLK_GEOMETRY",
    BLK_F_RO: "BLK_RO", BLK_F_BLK_SIZE: "BLK_BLK_SIZE", BLK_F_FLUSH: "BLK_FLUSH",
    BLK_F_TOPOLOGY: "BLK_TOPOLOGY", BLK_F_CONFIG_WCE: "BLK_CONFIG_WCE", BLK_F_MQ: "BLK_MQ",
    BLK_F_DISCARD: "BLK_DISCARD", BLK_F_WRITE_ZEROES: "BLK_WRITE_ZEROES",
}


def bit(n):
    return 1 << n


def feature_names(mask):
    return [FEATURE_NAMES.get(i, f"bit{i}") for i in range(64) if mask & (1 << i)]


# Split virtqueue layout
DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
AVAIL_F_NO_INTERRUPT = 1
USED_F_NO_NOTIFY = 1
DESC = struct.Struct("<QIHH")        # addr, len, flags, next
DESC_SIZE = DESC.size                # 16
USED_ELEM = struct.Struct("<II")     # id, len

# virtio-blk request types and status
T_IN = 0
T_OUT = 1
T_FLUSH = 4
T_GET_ID = 8
T_GET_LIFETIME = 10
T_DISCARD = 11
T_WRITE_ZEROES = 13
T_SECURE_ERASE = 14
TYPE_NAMES = {T_IN: "IN", T_OUT: "OUT", T_FLUSH: "FLUSH", T_GET_ID: "GET_ID",
              T_GET_LIFETIME: "GET_LIFETIME", T_DISCARD: "DISCARD",
              T_WRITE_ZEROES: "WRITE_ZEROES", T_SECURE_ERASE: "SECURE_ERASE"}

S_OK = 0
S_IOERR = 1
S_UNSUPP = 2
STATUS_NAMES = {S_OK: "OK", S_IOERR: "IOERR", S_UNSUPP: "UNSUPP"}

OUTHDR = struct.Struct("<IIQ")       # type, ioprio, sector
DWZ_SEG = struct.Struct("<QII")      # sector, num_sectors, flags
DWZ_F_UNMAP = 1
ID_BYTES = 20
SECTOR = 512


def vring_need_event(event_idx, new_idx, old_idx):
    """True if moving an index from old_idx to new_idx passes event_idx (u16 math)."""
    return ((new_idx - event_idx - 1) & 0xFFFF) < ((new_idx - old_idx) & 0xFFFF)


def ring_sizes(num):
    """Byte sizes of (desc table, avail ring, used ring) for a split ring of num entries."""
    return DESC_SIZE * num, 4 + 2 * num + 2, 4 + 8 * num + 2
