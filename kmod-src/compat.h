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
 * call_read_iter()/call_write_iter() were removed in 6.10; calling the
 * file operations directly works everywhere.
 */
static inline ssize_t vblk_call_rw_iter(struct file *file, struct kiocb *iocb,
					struct iov_iter *iter, bool write)
{
	if (write)
		return file->f_op->write_iter(iocb, iter);
	return file->f_op->read_iter(iocb, iter);
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
