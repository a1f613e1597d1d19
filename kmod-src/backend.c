// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: the backing file or block device and asynchronous I/O on it.
 *
 * Reads and writes go through the file's ->read_iter/->write_iter with an
 * asynchronous kiocb: with O_DIRECT they usually return -EIOCBQUEUED and
 * complete later through ki_complete (possibly in hard IRQ context), which
 * only queues the request on vq->done and wakes the queue's worker.
 * Buffered I/O completes synchronously; that is accepted.
 * Flush, discard and write-zeroes may sleep for long: they run on a
 * workqueue and complete the same way.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/blkdev.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/ioprio.h>
#include <linux/rcupdate.h>

#include "vblk.h"

static void vblk_backend_make_id(struct vblk_backend *be, struct inode *inode)
{
	char buf[32];
	int n;

	if (S_ISBLK(inode->i_mode))
		n = snprintf(buf, sizeof(buf), "vblk-b%u:%u",
			     MAJOR(inode->i_rdev), MINOR(inode->i_rdev));
	else
		n = snprintf(buf, sizeof(buf), "vblk-%x-%lx",
			     (unsigned int)inode->i_sb->s_dev, inode->i_ino);
	memset(be->id, 0, sizeof(be->id));
	memcpy(be->id, buf, min_t(int, n, sizeof(be->id)));
}

struct vblk_backend *vblk_backend_open(int fd, u32 flags, long *err)
{
	bool ro = flags & VHOST_BLK_BACKEND_F_READONLY;
	struct vblk_backend *be;
	struct inode *inode, *host;
	struct file *file;

	file = fget(fd);
	if (!file) {
		*err = -EBADF;
		return NULL;
	}
	inode = file_inode(file);
	host = file->f_mapping->host;	/* the bdev inode for block devices */

	*err = -EINVAL;
	if (!S_ISREG(inode->i_mode) && !S_ISBLK(inode->i_mode))
		goto err_put;
	*err = -EBADF;
	if (!(file->f_mode & FMODE_READ) || !(file->f_mode & FMODE_CAN_READ) ||
	    !file->f_op->read_iter)
		goto err_put;
	if (!ro && (!(file->f_mode & FMODE_WRITE) ||
		    !(file->f_mode & FMODE_CAN_WRITE) || !file->f_op->write_iter))
		goto err_put;
	/* O_APPEND would move every guest write to the end of the file */
	*err = -EINVAL;
	if (!ro && (file->f_flags & O_APPEND))
		goto err_put;

	*err = -ENOMEM;
	be = kzalloc(sizeof(*be), GFP_KERNEL_ACCOUNT);
	if (!be)
		goto err_put;

	be->file = file;
	be->capacity = i_size_read(host) >> VBLK_SECTOR_SHIFT;
	be->blk_size = 512;
	be->info_flags = VHOST_BLK_INFO_F_BACKEND;
	if (ro)
		be->info_flags |= VHOST_BLK_INFO_F_READONLY;
	if (file->f_flags & O_DIRECT)
		be->info_flags |= VHOST_BLK_INFO_F_DIRECT;

	if (S_ISBLK(inode->i_mode)) {
		struct block_device *bdev = I_BDEV(host);

		if (!ro && bdev_read_only(bdev)) {
			*err = -EROFS;
			goto err_free;
		}
		be->info_flags |= VHOST_BLK_INFO_F_BLKDEV;
		be->blk_size = bdev_logical_block_size(bdev);
		if (!ro && bdev_max_discard_sectors(bdev))
			be->info_flags |= VHOST_BLK_INFO_F_DISCARD;
		if (!ro)
			be->info_flags |= VHOST_BLK_INFO_F_WRITE_ZEROES;
	} else {
		if ((file->f_flags & O_DIRECT) && inode->i_sb->s_bdev)
			be->blk_size =
				bdev_logical_block_size(inode->i_sb->s_bdev);
		if (!ro && file->f_op->fallocate)
			be->info_flags |= VHOST_BLK_INFO_F_DISCARD |
					  VHOST_BLK_INFO_F_WRITE_ZEROES;
	}
	vblk_backend_make_id(be, inode);
	return be;

err_free:
	kfree(be);
err_put:
	fput(file);
	return NULL;
}

void vblk_backend_put(struct vblk_backend *be)
{
	fput(be->file);
	kfree(be);
}

/*
 * Any context, including hard IRQ. Once the request is on vq->done the worker
 * may reap it at once, the last inflight request may be gone and release may
 * be stopping the worker and freeing the device: @vq is only used inside this
 * RCU read section, and vblk_dev_reset() waits for a grace period after its
 * drain before it stops the workers (as vhost_vq_work_queue() does).
 */
void vblk_req_queue_done(struct vblk_req *req)
{
	struct vblk_vq *vq = req->vq;
	struct task_struct *worker;

	rcu_read_lock();
	if (llist_add(&req->node, &vq->done)) {
		worker = READ_ONCE(vq->worker);
		if (worker)
			wake_up_process(worker);
	}
	rcu_read_unlock();
}

static void vblk_rw_complete(struct kiocb *iocb, long ret)
{
	struct vblk_req *req = container_of(iocb, struct vblk_req, iocb);

	req->ret = ret;
	vblk_req_queue_done(req);
}

void vblk_backend_submit_rw(struct vblk_vq *vq, struct vblk_req *req,
			    struct iov_iter *iter, bool write)
{
	struct kiocb *iocb = &req->iocb;
	struct file *file = req->file;
	ssize_t ret;

	init_sync_kiocb(iocb, file);
	iocb->ki_pos = req->sector << VBLK_SECTOR_SHIFT;
	iocb->ki_complete = vblk_rw_complete;
	if (write) {
		iocb->ki_flags |= IOCB_WRITE;
		/* no FLUSH negotiated: an acknowledged write must be stable */
		if (!vblk_has(vq->acked, VIRTIO_BLK_F_FLUSH))
			iocb->ki_flags |= IOCB_DSYNC;
		if (S_ISREG(file_inode(file)->i_mode)) {
			kiocb_start_write(iocb);
			req->flags |= VBLK_REQ_WRITE_STARTED;
		}
	}

	ret = vblk_call_rw_iter(file, iocb, iter, write);
	if (ret == -EIOCBQUEUED)
		return;		/* vblk_rw_complete() will be called */
	req->ret = ret;
	vblk_req_complete(vq, req);
}

void vblk_backend_submit_work(struct vblk_vq *vq, struct vblk_req *req)
{
	queue_work(vblk_wq, &req->work);
}
