// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: per-open device state and device-wide ioctls
 * (owner, features, memory table, dirty log, backend, info, reset).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>
#include <linux/vhost.h>
#include <linux/rcupdate.h>

#include "vblk.h"

static atomic_t vblk_dev_ids = ATOMIC_INIT(0);

struct vblk_dev *vblk_dev_alloc(void)
{
	unsigned int nvqs = clamp_val(READ_ONCE(vblk_max_queues), 1,
				      VBLK_MAX_QUEUES);
	struct vblk_dev *dev;
	unsigned int i;

	dev = kzalloc(struct_size(dev, vqs, nvqs), GFP_KERNEL_ACCOUNT);
	if (!dev)
		return NULL;

	mutex_init(&dev->mutex);
	dev->id = atomic_inc_return(&vblk_dev_ids);
	dev->nvqs = nvqs;
	dev->seg_max = clamp_val(READ_ONCE(vblk_seg_max), 1,
				 VBLK_MAX_QUEUE_SIZE);
	dev->pool_max = clamp_val(READ_ONCE(vblk_max_inflight), 1,
				  VBLK_MAX_QUEUE_SIZE);
	vblk_slow_init(dev);

	for (i = 0; i < nvqs; i++) {
		struct vblk_vq *vq = &dev->vqs[i];

		vq->dev = dev;
		vq->index = i;
		mutex_init(&vq->mutex);
		init_llist_head(&vq->done);
		init_waitqueue_head(&vq->drain_wq);
		INIT_LIST_HEAD(&vq->free_reqs);
		vq->poll.vq = vq;
		vq->busyloop_us = vblk_default_busyloop_us();
	}
	return dev;
}

/* Copy device-wide state the workers use into every vq. */
static void vblk_dev_sync_vqs(struct vblk_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->nvqs; i++) {
		struct vblk_vq *vq = &dev->vqs[i];

		mutex_lock(&vq->mutex);
		vq->acked = dev->acked;
		vq->mem = dev->mem;
		vq->be = dev->be;
		vq->log_base = dev->log_base;
		vq->log_ctx = dev->log_ctx;
		memcpy(vq->serial, dev->serial, sizeof(vq->serial));
		mutex_unlock(&vq->mutex);
	}
}

/* Stop (or resume) taking new requests on every queue; VMM's stops stay. */
static void vblk_dev_pause(struct vblk_dev *dev, bool paused)
{
	unsigned int i;

	for (i = 0; i < dev->nvqs; i++) {
		mutex_lock(&dev->vqs[i].mutex);
		dev->vqs[i].paused = paused;
		mutex_unlock(&dev->vqs[i].mutex);
	}
}

static void vblk_dev_drain(struct vblk_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->nvqs; i++)
		vblk_vq_drain(&dev->vqs[i]);
}

static u64 vblk_dev_features(struct vblk_dev *dev)
{
	u64 f = VBLK_FEATURES;
	u32 flags = dev->be ? vblk_backend_flags(dev->be) : 0;

	if (flags & VHOST_BLK_INFO_F_READONLY)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	if (flags & VHOST_BLK_INFO_F_DISCARD)
		f |= 1ULL << VIRTIO_BLK_F_DISCARD;
	if (flags & VHOST_BLK_INFO_F_WRITE_ZEROES)
		f |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	return f;
}

/*
 * Stop every queue, wait for in-flight I/O, stop the workers and drop all
 * resources. Leaves @dev as freshly opened (no owner), except for the serial
 * (VHOST_BLK_SET_SERIAL), which belongs to the device.
 */
static void vblk_dev_reset(struct vblk_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->nvqs; i++) {
		struct vblk_vq *vq = &dev->vqs[i];

		mutex_lock(&vq->mutex);
		vq->stopped = true;
		vblk_poll_stop(vq);
		mutex_unlock(&vq->mutex);
	}
	vblk_dev_drain(dev);
	/* completers still inside vblk_req_queue_done() have left it */
	synchronize_rcu();
	for (i = 0; i < dev->nvqs; i++) {
		vblk_worker_stop(&dev->vqs[i]);
		vblk_vq_cleanup(&dev->vqs[i]);
	}
	/* drained: nothing queued or running on them; they use dev->mm */
	vblk_slow_stop(dev);
	vblk_stats_dev_remove(dev);

	if (dev->be)
		vblk_backend_put(dev->be);
	dev->be = NULL;
	kvfree(dev->mem);
	dev->mem = NULL;
	if (dev->log_ctx)
		eventfd_ctx_put(dev->log_ctx);
	dev->log_ctx = NULL;
	dev->log_base = 0;
	dev->acked = 0;
	if (dev->mm)
		mmput(dev->mm);
	dev->mm = NULL;
	if (dev->counted)
		vblk_quota_put_device();
	dev->counted = false;
	vblk_dev_sync_vqs(dev);
}

void vblk_dev_release(struct vblk_dev *dev)
{
	mutex_lock(&dev->mutex);
	vblk_dev_reset(dev);
	mutex_unlock(&dev->mutex);
	kfree(dev);
}

static long vblk_set_owner(struct vblk_dev *dev)
{
	struct mm_struct *mm;
	int ret;

	if (dev->mm)
		return -EBUSY;
	mm = get_task_mm(current);
	if (!mm)
		return -EINVAL;
	dev->owner_pid = current->tgid;
	ret = vblk_quota_get_device();
	if (ret) {
		vblk_warn(dev, "max_devices (%u) devices have an owner already\n",
			  READ_ONCE(vblk_max_devices));
		mmput(mm);
		return ret;
	}
	dev->counted = true;
	dev->mm = mm;
	ret = vblk_slow_start(dev);
	if (ret) {
		dev->mm = NULL;
		mmput(mm);
		vblk_quota_put_device();
		dev->counted = false;
		return ret;
	}
	vblk_stats_dev_add(dev);
	return 0;
}

static long vblk_set_features(struct vblk_dev *dev, u64 __user *argp)
{
	u64 features;

	if (copy_from_user(&features, argp, sizeof(features)))
		return -EFAULT;
	if (features & ~(VBLK_FEATURES | VBLK_BACKEND_FEATURES))
		return -EOPNOTSUPP;
	if (!vblk_has(features, VIRTIO_F_VERSION_1))
		return -EINVAL;
	/* from now on every guest write is logged: the bitmap must cover it */
	if (vblk_has(features, VHOST_F_LOG_ALL) && dev->log_base &&
	    !vblk_log_covers(dev, dev->mem, dev->log_base))
		return -EFAULT;
	dev->acked = features;
	vblk_dev_sync_vqs(dev);
	return 0;
}

static long vblk_set_mem_table(struct vblk_dev *dev, void __user *argp)
{
	struct vblk_mem *mem, *old;
	long err;

	mem = vblk_mem_from_user(argp, &err);
	if (!mem)
		return err;
	if (vblk_has(dev->acked, VHOST_F_LOG_ALL) && dev->log_base &&
	    !vblk_log_covers(dev, mem, dev->log_base)) {
		kvfree(mem);
		return -EFAULT;
	}
	old = dev->mem;
	dev->mem = mem;
	vblk_dev_sync_vqs(dev);
	kvfree(old);
	return 0;
}

static long vblk_set_log_base(struct vblk_dev *dev, u64 __user *argp)
{
	u64 base;

	if (copy_from_user(&base, argp, sizeof(base)))
		return -EFAULT;
	if (base != (unsigned long)base)
		return -EFAULT;
	if (base && !vblk_log_covers(dev, dev->mem, base))
		return -EFAULT;
	dev->log_base = base;
	vblk_dev_sync_vqs(dev);
	return 0;
}

static long vblk_set_log_fd(struct vblk_dev *dev, int __user *argp)
{
	struct eventfd_ctx *ctx = NULL, *old;
	int fd;

	if (get_user(fd, argp))
		return -EFAULT;
	if (fd != VHOST_FILE_UNBIND) {
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}
	old = dev->log_ctx;
	dev->log_ctx = ctx;
	vblk_dev_sync_vqs(dev);
	if (old)
		eventfd_ctx_put(old);
	return 0;
}

static long vblk_set_backend(struct vblk_dev *dev, void __user *argp)
{
	struct vhost_blk_backend b;
	struct vblk_backend *be = NULL, *old;
	unsigned int i;
	long err;

	if (copy_from_user(&b, argp, sizeof(b)))
		return -EFAULT;
	if (b.reserved[0] || b.reserved[1])
		return -EINVAL;
	if (b.flags & ~VHOST_BLK_BACKEND_F_READONLY)
		return -EINVAL;
	if (b.fd != -1) {
		be = vblk_backend_open(b.fd, b.flags, &err);
		if (!be)
			return err;
	}

	/*
	 * Pause every queue (no new requests, whatever the guest keeps adding),
	 * let the requests using the old backend finish, and swap under each
	 * vq->mutex: a worker pass that reaped the last of them has published
	 * its used entries by the time we get that mutex.
	 */
	vblk_dev_pause(dev, true);
	vblk_dev_drain(dev);
	old = dev->be;
	dev->be = be;
	vblk_dev_sync_vqs(dev);
	vblk_dev_pause(dev, false);
	if (old)
		vblk_backend_put(old);
	/* The guest may have queued requests while paused or without a backend. */
	for (i = 0; i < dev->nvqs; i++)
		vblk_worker_kick(&dev->vqs[i]);
	return 0;
}

static long vblk_get_info(struct vblk_dev *dev, void __user *argp)
{
	struct vblk_backend *be = dev->be;
	struct vhost_blk_info info = {};
	unsigned int i;

	info.abi_version = VHOST_BLK_ABI_VERSION;
	info.max_queues = dev->nvqs;
	info.max_queue_size = VBLK_MAX_QUEUE_SIZE;
	info.seg_max = dev->seg_max;
	info.features = vblk_dev_features(dev);
	info.blk_size = 512;
	info.max_sectors = VBLK_MAX_IO_BYTES >> VBLK_SECTOR_SHIFT;
	info.max_dwz_seg = VBLK_MAX_DWZ_SEGS;
	if (be) {
		info.capacity = be->capacity;
		info.blk_size = be->blk_size;
		info.flags = vblk_backend_flags(be);
		info.phys_blk_size = be->phys_blk_size;
		info.opt_io_size = be->opt_io_size;
	}
	if (info.flags & VHOST_BLK_INFO_F_DISCARD) {
		info.discard_granularity = be->discard_granularity;
		info.max_discard_sectors = be->max_discard_sectors;
	}
	if (info.flags & VHOST_BLK_INFO_F_WRITE_ZEROES)
		info.max_write_zeroes_sectors = be->max_write_zeroes_sectors;
	for (i = 0; i < dev->nvqs; i++)
		info.inflight += READ_ONCE(dev->vqs[i].inflight);

	if (copy_to_user(argp, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

/* The serial belongs to the device: it survives backend swaps and resets. */
static long vblk_set_serial(struct vblk_dev *dev, void __user *argp)
{
	struct vhost_blk_serial s;

	if (copy_from_user(&s, argp, sizeof(s)))
		return -EFAULT;
	if (s.len > VHOST_BLK_SERIAL_BYTES || s.reserved ||
	    memchr_inv(s.pad, 0, sizeof(s.pad)))
		return -EINVAL;
	BUILD_BUG_ON(VHOST_BLK_SERIAL_BYTES != VIRTIO_BLK_ID_BYTES);
	memset(dev->serial, 0, sizeof(dev->serial));
	memcpy(dev->serial, s.serial, s.len);
	vblk_dev_sync_vqs(dev);
	return 0;
}

long vblk_dev_ioctl(struct vblk_dev *dev, unsigned int cmd, void __user *argp)
{
	long ret;

	mutex_lock(&dev->mutex);

	/* Allowed for anybody holding the fd. */
	switch (cmd) {
	case VHOST_GET_FEATURES: {
		u64 f = vblk_dev_features(dev);

		ret = copy_to_user(argp, &f, sizeof(f)) ? -EFAULT : 0;
		goto out;
	}
	case VHOST_BLK_GET_INFO:
		ret = vblk_get_info(dev, argp);
		goto out;
	case VHOST_SET_OWNER:
		ret = vblk_set_owner(dev);
		goto out;
	case VHOST_BLK_SET_SERIAL:
		/* before SET_OWNER anybody holding the fd, then the owner */
		ret = dev->mm && dev->mm != current->mm ? -EPERM :
		      vblk_set_serial(dev, argp);
		goto out;
	}

	/* Everything else belongs to the owner. */
	if (dev->mm != current->mm) {
		ret = -EPERM;
		goto out;
	}

	switch (cmd) {
	case VHOST_RESET_OWNER:
		vblk_dev_reset(dev);
		ret = 0;
		break;
	case VHOST_SET_FEATURES:
		ret = vblk_set_features(dev, argp);
		break;
	case VHOST_SET_MEM_TABLE:
		ret = vblk_set_mem_table(dev, argp);
		break;
	case VHOST_SET_LOG_BASE:
		ret = vblk_set_log_base(dev, argp);
		break;
	case VHOST_SET_LOG_FD:
		ret = vblk_set_log_fd(dev, argp);
		break;
	case VHOST_BLK_SET_BACKEND:
		ret = vblk_set_backend(dev, argp);
		break;
	default:
		ret = vblk_vq_ioctl(dev, cmd, argp);
		break;
	}
out:
	mutex_unlock(&dev->mutex);
	return ret;
}
