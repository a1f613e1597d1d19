// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: reads and writes on the backend, and the hand-over of finished
 * requests to the queue's worker.
 *
 * Reads and writes go through vfs_iocb_iter_read()/vfs_iocb_iter_write(), so
 * the checks and hooks of read(2)/write(2) apply (range checks, the LSM
 * permission hook, fsnotify), with an asynchronous kiocb: with O_DIRECT they
 * usually return -EIOCBQUEUED and complete later through ki_complete
 * (possibly in hard IRQ context), which only queues the request on vq->done
 * and wakes the queue's worker. Buffered I/O completes synchronously; that is
 * accepted. The worker runs them with the backend opener's credentials (see
 * worker.c), as if the VMM had done the I/O itself.
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
 * Start a read or write of req->len bytes at req->sector. Returns
 * -EIOCBQUEUED when the request will come back through vq->done, else the
 * result (bytes transferred or -errno).
 */
ssize_t vblk_io_submit_rw(struct vblk_vq *vq, struct vblk_req *req,
			  struct iov_iter *iter, bool write)
{
	struct kiocb *iocb = &req->iocb;
	struct file *file = req->file;
	bool started;
	ssize_t ret;

	init_sync_kiocb(iocb, file);
	iocb->ki_pos = req->sector << VBLK_SECTOR_SHIFT;
	iocb->ki_complete = vblk_rw_complete;
	if (!write) {
		ret = vfs_iocb_iter_read(file, iocb, iter);
		goto out;
	}

	iocb->ki_flags |= IOCB_WRITE;
	/* no FLUSH negotiated: an acknowledged write must be stable */
	if (!vblk_has(vq->acked, VIRTIO_BLK_F_FLUSH))
		iocb->ki_flags |= IOCB_DSYNC;
	ret = vblk_iocb_write(file, iocb, iter, &started);
	/* the completion is reaped by this same worker, after we return */
	if (started)
		req->flags |= VBLK_REQ_WRITE_STARTED;
out:
	if (ret == -EIOCBQUEUED)
		req->flags |= VBLK_REQ_QUEUED;
	return ret;
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
