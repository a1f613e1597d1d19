/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-blk: kernel API drift between the supported kernels
 * (Debian 12's 6.1 and the 6.12 of bookworm-backports / Debian 13).
 * Everything version-dependent lives here and nowhere else.
 */
#ifndef VHOST_BLK_COMPAT_H
#define VHOST_BLK_COMPAT_H

#include <linux/version.h>
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/uio.h>
#include <linux/blkdev.h>

/* eventfd_signal() lost its count argument in 6.8. */
static inline void vblk_eventfd_signal(struct eventfd_ctx *ctx)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

/*
 * Writes go through vfs_iocb_iter_write() (permission hook, fsnotify).
 * From 6.8 on it takes the superblock's freeze protection itself
 * (kiocb_start_write) and drops it again unless the kiocb was queued; before,
 * the caller takes it, as overlayfs did, for regular files.
 * *started tells whether kiocb_end_write() is due when the request completes.
 */
static inline ssize_t vblk_iocb_write(struct file *file, struct kiocb *iocb,
				      struct iov_iter *iter, bool *started)
{
	ssize_t ret;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	ret = vfs_iocb_iter_write(file, iocb, iter);
	*started = ret == -EIOCBQUEUED;
#else
	*started = S_ISREG(file_inode(file)->i_mode);
	if (*started)
		kiocb_start_write(iocb);
	ret = vfs_iocb_iter_write(file, iocb, iter);
#endif
	return ret;
}

/* bd_prepare_to_claim() took holder ops in 6.5 (blk_holder_ops). */
static inline int vblk_bd_prepare_to_claim(struct block_device *bdev,
					   void *holder)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	return bd_prepare_to_claim(bdev, holder, NULL);
#else
	return bd_prepare_to_claim(bdev, holder);
#endif
}

/* iov_iter direction names: ITER_SOURCE/ITER_DEST exist from 6.1 on. */
#ifndef ITER_SOURCE
#define ITER_SOURCE WRITE
#define ITER_DEST READ
#endif

/*
 * Device node: a misc device, so the class_create() arity change of 6.4
 * does not concern us.
 *
 * Worker threads: we use a kthread adopting the owner's mm
 * (kthread_use_mm) and cgroups (cgroup_attach_task_all) on every
 * supported kernel; vhost_task only exists from 6.4 on.
 */

#endif /* VHOST_BLK_COMPAT_H */
