# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of the topology and limits in VHOST_BLK_GET_INFO.

Without a backend only the module's own limits are set (max_sectors = 1 GiB / 512,
max_dwz_seg = 16); with one, phys_blk_size / opt_io_size are those of the block device (for a
file: of its filesystem's device, else blk_size / 0), and the discard / write-zeroes fields are
non-zero exactly when the matching INFO_F flag is set. The reserved word is zero.
"""

import os

from .backend import host_topology

MAX_SECTORS = (1 << 30) >> 9
MAX_DWZ_SEG = 16


def _sysfs_queue(st, name):
    dev = st.st_rdev
    base = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for q in (f"{base}/queue", f"{base}/../queue"):
        try:
            with open(f"{q}/{name}") as f:
                return int(f.read())
        except OSError:
            continue
    return None


def run(lc):
    rep, a = lc.rep, lc.abi
    dev = lc.open_device()
    try:
        i = dev.get_info()
    finally:
        dev.close()
    rep.check("[topology] GET_INFO limits without a backend",
              i["max_sectors"] == MAX_SECTORS and i["max_dwz_seg"] == MAX_DWZ_SEG
              and i["reserved"] == 0 and i["phys_blk_size"] == 0 and i["opt_io_size"] == 0
              and i["discard_granularity"] == 0 and i["max_discard_sectors"] == 0
              and i["max_write_zeroes_sectors"] == 0, str(_fields(i)))
    s = lc.session()
    try:
        i = s.dev.get_info()
    finally:
        s.close()
    st = os.fstat(lc.fd)
    phys, opt = host_topology(st)
    phys = max(phys, i["blk_size"])
    rep.check("[topology] phys_blk_size / opt_io_size of the backing device",
              i["phys_blk_size"] == phys and i["opt_io_size"] == opt,
              f"{i['phys_blk_size']}/{i['opt_io_size']} (want {phys}/{opt})")
    rep.check("[topology] max_sectors, max_dwz_seg, reserved",
              i["max_sectors"] == MAX_SECTORS and i["max_dwz_seg"] == MAX_DWZ_SEG
              and i["reserved"] == 0, str(_fields(i)))
    disc = bool(i["flags"] & a.VHOST_BLK_INFO_F_DISCARD)
    wz = bool(i["flags"] & a.VHOST_BLK_INFO_F_WRITE_ZEROES)
    gran = i["discard_granularity"]
    rep.check("[topology] discard limits set exactly when DISCARD is served",
              (gran > 0 and gran % 512 == 0 and i["max_discard_sectors"] > 0) if disc
              else (gran == 0 and i["max_discard_sectors"] == 0),
              f"DISCARD {disc}: {_fields(i)}")
    rep.check("[topology] write-zeroes limit set exactly when WRITE_ZEROES is served",
              (i["max_write_zeroes_sectors"] > 0) == wz, f"WRITE_ZEROES {wz}: {_fields(i)}")
    if disc and lc.isblk:
        dg = _sysfs_queue(st, "discard_granularity")
        if dg is not None:
            want = max(dg, i["blk_size"])
            rep.check("[topology] discard_granularity of the block device", gran == want,
                      f"{gran} (sysfs {dg}, blk_size {i['blk_size']})")


def _fields(i):
    keys = ("blk_size", "phys_blk_size", "opt_io_size", "max_sectors", "discard_granularity",
            "max_discard_sectors", "max_write_zeroes_sectors", "max_dwz_seg", "reserved")
    return {k: i[k] for k in keys}
