/* SPDX-License-Identifier: GPL-2.0-or-later WITH Linux-syscall-note */
/*
 * vhost-blk: in-kernel virtio-blk data path - user-space ABI.
 *
 * This header is the single source of truth for the vhost-blk ABI. The kernel
 * module, the QEMU patches and the Python tools (which parse this file) all
 * take their numbers from here.
 *
 * A VMM opens /dev/vhost-blk once per virtio-blk device and drives it with the
 * standard vhost ioctls of <linux/vhost.h> (VHOST_SET_OWNER, VHOST_GET/SET_FEATURES,
 * VHOST_SET_MEM_TABLE, VHOST_SET_VRING_*, VHOST_GET_VRING_BASE, VHOST_SET_LOG_*,
 * VHOST_RESET_OWNER) plus the ioctls below.
 *
 * System-wide limits (module parameters max_devices, max_workers): VHOST_SET_OWNER
 * fails with EMFILE when max_devices devices have an owner already, and
 * VHOST_SET_VRING_KICK fails with ENOSPC when it needs a new queue worker and
 * max_workers are running. Backends on pseudo filesystems (proc, sysfs, debugfs,
 * tracefs, securityfs, cgroup, bpf, configfs, efivarfs, pstore, ...) are refused
 * with EINVAL.
 *
 * Our ioctl numbers live in 0xB0..0xBF of the VHOST_VIRTIO (0xAF) space. They
 * do not collide with upstream vhost (0x00..0x8x), nor with earlier out-of-tree
 * vhost-blk series (0x50 in 2018, 0x90 and 0xFF in 2022).
 */
#ifndef _UAPI_LINUX_VHOST_BLK_H
#define _UAPI_LINUX_VHOST_BLK_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/vhost.h>

/* Bumped on any incompatible change of the structures or ioctls below. */
#define VHOST_BLK_ABI_VERSION		1

/* Device node name, under /dev. */
#define VHOST_BLK_DEVICE_NAME		"vhost-blk"

/* struct vhost_blk_backend.flags */
#define VHOST_BLK_BACKEND_F_READONLY	(1U << 0)  /* refuse OUT/DISCARD/WRITE_ZEROES */

/*
 * VHOST_BLK_SET_BACKEND: attach the backing file or block device.
 * fd >= 0: attach (the module takes its own reference; the caller may close fd).
 * fd == -1: detach; in-flight requests are drained first.
 * The file must be open for reading (and writing unless READONLY).
 */
struct vhost_blk_backend {
	__s32 fd;
	__u32 flags;
	__u64 reserved[2];	/* must be zero */
};

/* struct vhost_blk_info.flags */
#define VHOST_BLK_INFO_F_BACKEND	(1U << 0)  /* a backend is attached */
#define VHOST_BLK_INFO_F_READONLY	(1U << 1)  /* backend attached read-only */
#define VHOST_BLK_INFO_F_DIRECT		(1U << 2)  /* backend uses O_DIRECT */
#define VHOST_BLK_INFO_F_BLKDEV		(1U << 3)  /* backend is a block device */
#define VHOST_BLK_INFO_F_DISCARD	(1U << 4)  /* DISCARD is served */
#define VHOST_BLK_INFO_F_WRITE_ZEROES	(1U << 5)  /* WRITE_ZEROES is served */

/*
 * VHOST_BLK_GET_INFO: limits of the module and facts about the backend.
 * May be called before VHOST_SET_OWNER.
 */
struct vhost_blk_info {
	__u32 abi_version;	/* VHOST_BLK_ABI_VERSION */
	__u32 max_queues;	/* virtqueues per device */
	__u32 max_queue_size;	/* largest VHOST_SET_VRING_NUM accepted */
	__u32 seg_max;		/* data segments per request */
	__u64 features;		/* same as VHOST_GET_FEATURES */
	__u64 capacity;		/* backend size in 512-byte sectors, 0 without backend */
	__u32 blk_size;		/* logical block size of the backend, bytes */
	__u32 flags;		/* VHOST_BLK_INFO_F_* */
	__u64 inflight;		/* requests currently submitted to the backend */
	/*
	 * Topology and limits, for the VMM's virtio_blk_config (0 without backend
	 * where they describe the backend). Added in place of reserved words: the
	 * structure size, and so the ioctl number, did not change.
	 */
	__u32 phys_blk_size;	/* physical block size of the backend, bytes */
	__u32 opt_io_size;	/* optimal I/O size of the backend, bytes (0: none) */
	__u32 max_sectors;	/* longest read/write request, 512-byte sectors */
	__u32 discard_granularity;	/* bytes; 0 unless INFO_F_DISCARD */
	__u32 max_discard_sectors;	/* per segment; 0 unless INFO_F_DISCARD */
	__u32 max_write_zeroes_sectors;	/* per segment; 0 unless INFO_F_WRITE_ZEROES */
	__u32 max_dwz_seg;	/* segments per DISCARD / WRITE_ZEROES request */
	__u32 reserved;		/* zero */
};

/* Length of a virtio-blk serial (VIRTIO_BLK_ID_BYTES). */
#define VHOST_BLK_SERIAL_BYTES		20

/*
 * VHOST_BLK_SET_SERIAL: the serial the guest reads with VIRTIO_BLK_T_GET_ID.
 * len bytes of serial[] are used (len <= VHOST_BLK_SERIAL_BYTES; the rest is
 * zero-filled, as virtio-blk defines). len == 0 clears it: GET_ID then returns
 * an empty (all-zero) id. The serial belongs to the device, not the backend: it
 * survives VHOST_BLK_SET_BACKEND swaps. May be called before VHOST_SET_OWNER.
 */
struct vhost_blk_serial {
	__u32 len;
	__u32 reserved;		/* must be zero */
	__u8 serial[VHOST_BLK_SERIAL_BYTES];
	__u8 pad[4];		/* must be zero */
};

#define VHOST_BLK_SET_BACKEND	_IOW(VHOST_VIRTIO, 0xB0, struct vhost_blk_backend)
#define VHOST_BLK_GET_INFO	_IOR(VHOST_VIRTIO, 0xB1, struct vhost_blk_info)
#define VHOST_BLK_SET_SERIAL	_IOW(VHOST_VIRTIO, 0xB2, struct vhost_blk_serial)

#endif /* _UAPI_LINUX_VHOST_BLK_H */
