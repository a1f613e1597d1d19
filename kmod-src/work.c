// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: flush (coalescing in flush.c), discard and write zeroes, and
 * the device's slow-op threads that run them, and also the buffered reads
 * and writes that would block the queue's worker (io.c).
 *
 * They may sleep for long (an fsync of a busy filesystem, a discard of a
 * large range), so the queue workers do not run them: each device has its
 * own slow-op threads "vhost-blk-<owner pid>.s<N>", slow_ops_per_device of
 * them (module parameter, 1-16, default 4), started at VHOST_SET_OWNER the
 * way the queue workers are (worker.c: in the owner's cgroups, so the VM's
 * io.max and cpu limits apply, with the owner's mm). At most that many of a
 * device's slow requests run at a time; the others wait on the device's
 * queue, oldest first, and no other device's requests wait behind them (one
 * guest's slow fsyncs cannot hold up another VM's FLUSH, as they could on a
 * shared workqueue). Each runs with the backend opener's credentials and
 * comes back through vq->done like asynchronous reads and writes.
 *
 * Teardown (vblk_dev_reset): the queues are stopped and drained (in-flight
 * counts include queued and running slow requests), a grace period lets
 * every completer leave vblk_req_queue_done(), and only then are the
 * threads stopped; the device is freed after that.
 *
 * DISCARD on a block device: the page cache over the range is dropped, and
 * the discard issued, under the mapping's invalidate lock, as BLKDISCARD
 * does (truncate_bdev_range() is not exported; this is its body): no read
 * can bring stale data back into the cache meanwhile, and the cache of a
 * device another holder (a mounted filesystem) has claimed is only
 * invalidated, never truncated under it.
 * DISCARD on a file punches a hole. A filesystem that cannot (EOPNOTSUPP)
 * answers VIRTIO_BLK_S_UNSUPP, and DISCARD is no longer offered for this
 * backend (GET_INFO, GET_FEATURES); the same for WRITE_ZEROES.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/cred.h>
#include <linux/falloc.h>
#include <linux/kthread.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

#include "vblk.h"

/* Our claim while we drop a block device's cache (its address is the holder). */
static char vblk_discard_holder;

static int vblk_bdev_drop_cache(struct block_device *bdev, struct file *file,
				loff_t start, loff_t end)
{
	struct address_space *mapping = file->f_mapping;

	/* opened with O_EXCL: the claim is ours already */
	if (READ_ONCE(bdev->bd_holder) == file) {
		truncate_inode_pages_range(mapping, start, end);
		return 0;
	}
	if (vblk_bd_prepare_to_claim(bdev, &vblk_discard_holder))
		/* someone else holds it exclusively: do not pull pages away */
		return invalidate_inode_pages2_range(mapping,
						     start >> PAGE_SHIFT,
						     end >> PAGE_SHIFT);
	truncate_inode_pages_range(mapping, start, end);
	bd_abort_claiming(bdev, &vblk_discard_holder);
	return 0;
}

static int vblk_bdev_discard(struct file *file, loff_t off, loff_t len)
{
	struct address_space *mapping = file->f_mapping;
	struct block_device *bdev = I_BDEV(mapping->host);
	int ret;

	filemap_invalidate_lock(mapping);
	ret = vblk_bdev_drop_cache(bdev, file, off, off + len - 1);
	if (!ret)
		ret = blkdev_issue_discard(bdev, off >> VBLK_SECTOR_SHIFT,
					   len >> VBLK_SECTOR_SHIFT,
					   GFP_KERNEL);
	filemap_invalidate_unlock(mapping);
	return ret;
}

static int vblk_punch_hole(struct file *file, loff_t off, loff_t len)
{
	return vfs_fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     off, len);
}

static int vblk_dwz_one(struct vblk_req *req, bool isblk, loff_t off,
			loff_t len)
{
	struct file *file = req->file;
	int ret;

	if (req->type == VIRTIO_BLK_T_DISCARD)
		/* fallocate() on a block device would zero, not discard */
		return isblk ? vblk_bdev_discard(file, off, len) :
			       vblk_punch_hole(file, off, len);

	ret = vfs_fallocate(file, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			    off, len);
	/* e.g. tmpfs: punching a hole reads back as zeroes */
	if (ret == -EOPNOTSUPP && !isblk)
		ret = vblk_punch_hole(file, off, len);
	return ret;
}

static int vblk_dwz(struct vblk_req *req)
{
	bool isblk = S_ISBLK(file_inode(req->file)->i_mode);
	int ret = 0;
	u16 i;

	for (i = 0; i < req->nr_segs && !ret; i++) {
		const struct vblk_dwz_seg *s = &req->segs[i];
		loff_t off = le64_to_cpu(s->sector) << VBLK_SECTOR_SHIFT;
		loff_t len = (loff_t)le32_to_cpu(s->num_sectors) <<
			     VBLK_SECTOR_SHIFT;

		if (len)
			ret = vblk_dwz_one(req, isblk, off, len);
	}
	return ret;
}

/* The filesystem cannot do it: answer UNSUPP from now on, offer it no more. */
static void vblk_dwz_unsupported(struct vblk_req *req)
{
	struct vblk_backend *be = req->be;
	unsigned int bit = req->type == VIRTIO_BLK_T_DISCARD ?
			   __ffs(VHOST_BLK_INFO_F_DISCARD) :
			   __ffs(VHOST_BLK_INFO_F_WRITE_ZEROES);

	if (!test_and_set_bit(bit, &be->unsupp))
		vblk_info(req->vq->dev,
			  "%s not supported by the backing filesystem: no longer offered\n",
			  req->type == VIRTIO_BLK_T_DISCARD ? "discard" :
			  "write zeroes");
}

/* A slow-op thread, with the backend opener's credentials. */
static void vblk_slow_run(struct vblk_req *req)
{
	const struct cred *old = override_creds(req->file->f_cred);

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		req->ret = vblk_io_rw_blocking(req);
		break;
	case VIRTIO_BLK_T_FLUSH:
		req->ret = vblk_flush_run(req);
		break;
	default:
		req->ret = vblk_dwz(req);
		if (req->ret == -EOPNOTSUPP)
			vblk_dwz_unsupported(req);
		break;
	}
	revert_creds(old);
}

/* The oldest waiting request, now counted as running; NULL if none waits. */
static struct vblk_req *vblk_slow_take(struct vblk_slow *sl)
{
	struct vblk_req *req;

	spin_lock(&sl->lock);
	req = list_first_entry_or_null(&sl->queue, struct vblk_req, slow);
	if (req) {
		list_del_init(&req->slow);
		WRITE_ONCE(sl->queued, sl->queued - 1);
		WRITE_ONCE(sl->running, sl->running + 1);
		if (sl->running > sl->running_max)
			WRITE_ONCE(sl->running_max, sl->running);
	}
	spin_unlock(&sl->lock);
	return req;
}

static int vblk_slow_fn(void *data)
{
	struct vblk_dev *dev = data;
	struct vblk_slow *sl = &dev->slow;
	struct mm_struct *mm = dev->mm;
	struct vblk_req *req;

	/* memory the operations allocate is charged to the VM (6.1 too) */
	kthread_use_mm(mm);
	for (;;) {
		/* kthreads get no signals: this returns when the condition holds */
		wait_event_interruptible_exclusive(sl->wait,
						   READ_ONCE(sl->queued) ||
						   kthread_should_stop());
		req = vblk_slow_take(sl);
		if (!req) {
			/* the reset drained every queue before stopping us */
			if (kthread_should_stop())
				break;
			continue;	/* another thread took it */
		}
		vblk_slow_run(req);
		spin_lock(&sl->lock);
		WRITE_ONCE(sl->running, sl->running - 1);
		WRITE_ONCE(sl->done, sl->done + 1);
		spin_unlock(&sl->lock);
		/* last use of @req: its worker may reuse it at once */
		vblk_req_queue_done(req);
		cond_resched();
	}
	kthread_unuse_mm(mm);
	return 0;
}

/*
 * Hand a FLUSH, DISCARD, WRITE_ZEROES, or a buffered read or write that
 * would block (io.c), to the device's slow-op threads.
 */
void vblk_slow_queue(struct vblk_dev *dev, struct vblk_req *req)
{
	struct vblk_slow *sl = &dev->slow;

	spin_lock(&sl->lock);
	list_add_tail(&req->slow, &sl->queue);
	WRITE_ONCE(sl->queued, sl->queued + 1);
	if (req->type == VIRTIO_BLK_T_IN || req->type == VIRTIO_BLK_T_OUT)
		WRITE_ONCE(sl->rw, sl->rw + 1);
	spin_unlock(&sl->lock);
	wake_up(&sl->wait);	/* one idle thread, if any; else the next free one */
}

void vblk_slow_init(struct vblk_dev *dev)
{
	struct vblk_slow *sl = &dev->slow;

	spin_lock_init(&sl->lock);
	INIT_LIST_HEAD(&sl->queue);
	init_waitqueue_head(&sl->wait);
}

/*
 * VHOST_SET_OWNER, from the owner's ioctl (dev->mutex held, dev->mm set, no
 * queue running): slow_ops_per_device threads in the owner's cgroups.
 */
int vblk_slow_start(struct vblk_dev *dev)
{
	struct vblk_slow *sl = &dev->slow;
	unsigned int n = clamp_val(READ_ONCE(vblk_slow_ops_per_device), 1,
				   VBLK_MAX_SLOW_OPS);
	char name[32];
	unsigned int i;
	int ret;

	sl->queued = 0;
	sl->running = 0;
	sl->running_max = 0;
	sl->done = 0;
	sl->rw = 0;
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "vhost-blk-%d.s%u", current->tgid, i);
		ret = vblk_thread_start(dev, &sl->threads[i], vblk_slow_fn, dev,
					name);
		if (ret) {
			vblk_slow_stop(dev);
			return ret;
		}
		WRITE_ONCE(sl->nthreads, i + 1);
	}
	return 0;
}

/*
 * Reset or release, after every queue was drained and a grace period: no
 * slow request is queued or running and no completer is still using one.
 */
void vblk_slow_stop(struct vblk_dev *dev)
{
	struct vblk_slow *sl = &dev->slow;
	unsigned int i;

	for (i = 0; i < VBLK_MAX_SLOW_OPS; i++) {
		struct task_struct *t = sl->threads[i];

		if (!t)
			continue;
		sl->threads[i] = NULL;
		kthread_stop(t);
	}
	WRITE_ONCE(sl->nthreads, 0);
	WARN_ON_ONCE(!list_empty(&sl->queue) || sl->running);
}
