// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: reads and writes on the backend, and the hand-over of finished
 * requests to the queue's worker.
 *
 * Reads and writes go through vfs_iocb_iter_read()/vfs_iocb_iter_write(), so
 * the checks and hooks of read(2)/write(2) apply (range checks, the LSM
 * permission hook, fsnotify), with the backend opener's credentials (see
 * worker.c), as if the VMM had done the I/O itself.
 *
 * O_DIRECT: an asynchronous kiocb; the call usually returns -EIOCBQUEUED and
 * the request completes later through ki_complete (possibly in hard IRQ
 * context), which only queues it on vq->done and wakes the queue's worker.
 *
 * Buffered (the default): the worker first tries with IOCB_NOWAIT, which
 * succeeds when the data is in the page cache (reads) or can be copied there
 * without waiting (writes, on filesystems that allow it). What would block
 * (-EAGAIN; -EOPNOTSUPP from a filesystem without non-blocking buffered
 * writes; files without FMODE_NOWAIT; writes to a frozen filesystem, whose
 * freeze protection would be waited for; writes that must be stable) goes to
 * the device's slow-op threads (work.c), which do it blocking, in the VM's
 * cgroups, while the worker goes on with the queue's other requests: buffered
 * I/O keeps the guest's queue depth, up to slow_ops_per_device requests per
 * device waiting for the disk at a time. A short non-blocking transfer (part
 * of a read cached, the rest not) is continued there from where it stopped:
 * the guest never sees a short transfer the backend did not make.
 * The request stays counted in vq->inflight all along, so every drain
 * (SET_BACKEND, GET_VRING_BASE, reset, release) waits for it.
 */
#include <linux/fs.h>
#include <linux/fsnotify.h>
#include <linux/sched.h>
#include <linux/rcupdate.h>

#include "vblk.h"

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

/*
 * Read or write what is left of the request (from req->done_bytes on) from
 * @iter. With @async an O_DIRECT transfer may return -EIOCBQUEUED and come
 * back through vq->done; else it is done when this returns. Returns bytes
 * transferred or -errno.
 */
static ssize_t vblk_io_call(struct vblk_req *req, struct iov_iter *iter,
			    bool write, int flags, bool async)
{
	struct kiocb *iocb = &req->iocb;
	struct file *file = req->file;
	bool started;
	ssize_t ret;

	init_sync_kiocb(iocb, file);
	iocb->ki_pos = (req->sector << VBLK_SECTOR_SHIFT) + req->done_bytes;
	iocb->ki_flags |= flags;
	if (async)
		iocb->ki_complete = vblk_rw_complete;
	if (!write) {
		ret = vfs_iocb_iter_read(file, iocb, iter);
	} else {
		iocb->ki_flags |= IOCB_WRITE;
		if (req->flags & VBLK_REQ_DSYNC)
			iocb->ki_flags |= IOCB_DSYNC;
		ret = vblk_iocb_write(file, iocb, iter, &started);
		if (started && ret == -EIOCBQUEUED)
			/* the completion is reaped by the worker, later */
			req->flags |= VBLK_REQ_WRITE_STARTED;
		else if (started)
			kiocb_end_write(iocb);
	}
	if (ret == -EIOCBQUEUED)
		req->flags |= VBLK_REQ_QUEUED;
	return ret;
}

/* May the worker try this buffered read or write with IOCB_NOWAIT? */
static bool vblk_io_nowait_ok(struct vblk_req *req, bool write)
{
	struct file *file = req->file;

	if (!(file->f_mode & FMODE_NOWAIT))
		return false;
	if (!write)
		return true;
	/* the wait for the data to be stable would be the worker's */
	if (req->flags & VBLK_REQ_DSYNC)
		return false;
	/*
	 * The write would wait for the thaw in the freeze protection, which
	 * takes no IOCB_NOWAIT. A freeze starting after this check makes the
	 * worker wait as it did before non-blocking writes.
	 */
	return READ_ONCE(file_inode(file)->i_sb->s_writers.frozen) ==
	       SB_UNFROZEN;
}

/*
 * Start a read or write of req->len bytes at req->sector (worker, vq->mutex
 * held, the request already counted in vq->inflight). It is either answered
 * here or comes back through vq->done: from ki_complete (O_DIRECT) or from a
 * slow-op thread (buffered I/O that would block).
 */
void vblk_io_start_rw(struct vblk_vq *vq, struct vblk_req *req,
		      struct iov_iter *iter, bool write)
{
	ssize_t ret;

	req->done_bytes = 0;
	/* no FLUSH negotiated: an acknowledged write must be stable */
	if (write && !vblk_has(vq->acked, VIRTIO_BLK_F_FLUSH))
		req->flags |= VBLK_REQ_DSYNC;

	if (req->file->f_flags & O_DIRECT) {
		ret = vblk_io_call(req, iter, write, 0, true);
		goto out;
	}
	if (!vblk_io_nowait_ok(req, write))
		goto hand_over;
	ret = vblk_io_call(req, iter, write, IOCB_NOWAIT, true);
	if (ret == -EAGAIN || ret == -EOPNOTSUPP)
		goto hand_over;
	if (ret > 0 && (u64)ret < req->len) {
		/* partly cached: the rest blocking, never a short answer */
		req->done_bytes = ret;
		goto hand_over;
	}
out:
	if (ret == -EIOCBQUEUED)
		return;
	req->ret = ret;
	vblk_req_complete(vq, req);
	return;
hand_over:
	vblk_slow_queue(vq->dev, req);
}

/*
 * A slow-op thread (work.c), with the backend opener's credentials and the
 * owner's mm: the rest of a buffered read or write, blocking. The guest
 * buffers are walked again from req->iov (the worker's iov_iter is gone).
 * Returns the bytes of the whole request transferred, or -errno when none.
 */
ssize_t vblk_io_rw_blocking(struct vblk_req *req)
{
	bool write = req->type == VIRTIO_BLK_T_OUT;
	struct iov_iter iter;
	ssize_t ret;

	if (write) {
		iov_iter_init(&iter, ITER_SOURCE, req->iov, req->n_out,
			      req->out_len);
		iov_iter_advance(&iter, sizeof(struct vblk_outhdr));
	} else {
		iov_iter_init(&iter, ITER_DEST, req->iov + req->n_out,
			      req->n_iov - req->n_out, req->in_len);
	}
	iov_iter_advance(&iter, req->done_bytes);
	iov_iter_truncate(&iter, req->len - req->done_bytes);
	ret = vblk_io_call(req, &iter, write, 0, false);
	if (ret < 0)
		return req->done_bytes ? (ssize_t)req->done_bytes : ret;
	return req->done_bytes + ret;
}

/*
 * A read or write came back (worker, process context). vfs_iocb_iter_*()
 * only notify fsnotify watchers of what completed synchronously; as
 * io_uring does, do it here for what completed asynchronously.
 */
void vblk_io_end(struct vblk_req *req)
{
	if (req->flags & VBLK_REQ_WRITE_STARTED)
		kiocb_end_write(&req->iocb);
	if ((req->flags & VBLK_REQ_QUEUED) && req->ret > 0) {
		if (req->type == VIRTIO_BLK_T_OUT)
			fsnotify_modify(req->file);
		else
			fsnotify_access(req->file);
	}
}
