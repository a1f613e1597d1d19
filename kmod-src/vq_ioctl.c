// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: per-virtqueue ioctls (VHOST_SET_VRING_*, VHOST_GET_VRING_BASE)
 * and per-queue teardown.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vhost.h>

#include "vblk.h"

/* Drop everything a queue holds; the worker must be stopped already. */
void vblk_vq_cleanup(struct vblk_vq *vq)
{
	mutex_lock(&vq->mutex);
	vblk_poll_stop(vq);
	if (vq->kick)
		fput(vq->kick);
	if (vq->call)
		eventfd_ctx_put(vq->call);
	if (vq->err)
		eventfd_ctx_put(vq->err);
	vq->kick = NULL;
	vq->call = NULL;
	vq->err = NULL;
	vblk_pool_free(vq);
	vq->num = 0;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->log_addr = 0;
	vq->log_used = false;
	vq->last_avail_idx = 0;
	vq->avail_idx = 0;
	vq->used_idx = 0;
	vq->used_flags = 0;
	vq->signalled_used_valid = false;
	vq->need_init = true;
	vq->stopped = false;
	vq->broken = false;
	vq->starved = false;
	vq->poll_found = false;
	vq->logged = false;
	vq->added = 0;
	vq->work = 0;
	WRITE_ONCE(vq->busyloop_us, vblk_default_busyloop_us());
	mutex_unlock(&vq->mutex);
}

/* Wait until every request submitted on @vq has been completed. */
void vblk_vq_drain(struct vblk_vq *vq)
{
	wait_event(vq->drain_wq, READ_ONCE(vq->inflight) == 0);
}

static long vblk_set_vring_num(struct vblk_vq *vq, struct vhost_vring_state *s)
{
	int ret;

	if (!s->num || s->num > VBLK_MAX_QUEUE_SIZE || (s->num & (s->num - 1)))
		return -EINVAL;
	if (vq->inflight)
		return -EBUSY;
	if (s->num != vq->num || !vq->pool) {
		ret = vblk_pool_alloc(vq, s->num);
		if (ret)
			return ret;
	}
	/*
	 * Ring addresses stay: every ring access goes through the checked
	 * user access helpers, whatever size they were validated for.
	 */
	vq->num = s->num;
	vq->need_init = true;
	return 0;
}

static long vblk_set_vring_base(struct vblk_vq *vq, struct vhost_vring_state *s)
{
	if (s->num > 0xffff)
		return -EINVAL;
	if (vq->inflight)
		return -EBUSY;
	vq->last_avail_idx = s->num;
	vq->avail_idx = s->num;
	vq->need_init = true;
	vq->stopped = false;
	vq->broken = false;
	/* entries the guest added while the ring was stopped need no new kick */
	vblk_worker_kick(vq);
	return 0;
}

static long vblk_set_vring_addr(struct vblk_vq *vq, struct vhost_vring_addr *a)
{
	size_t num = vq->num;

	if (!num)
		return -EINVAL;
	if (a->flags & ~(1U << VHOST_VRING_F_LOG))
		return -EOPNOTSUPP;
	if ((a->desc_user_addr & 15) || (a->avail_user_addr & 1) ||
	    (a->used_user_addr & 3))
		return -EINVAL;
	if (a->desc_user_addr != (unsigned long)a->desc_user_addr ||
	    a->avail_user_addr != (unsigned long)a->avail_user_addr ||
	    a->used_user_addr != (unsigned long)a->used_user_addr)
		return -EFAULT;
	if (!access_ok(u64_to_user_ptr(a->desc_user_addr),
		       num * sizeof(struct vblk_desc)) ||
	    !access_ok(u64_to_user_ptr(a->avail_user_addr),
		       sizeof(struct vblk_avail) + (num + 1) * sizeof(__le16)) ||
	    !access_ok(u64_to_user_ptr(a->used_user_addr),
		       sizeof(struct vblk_used) +
		       num * sizeof(struct vblk_used_elem) + sizeof(__le16)))
		return -EFAULT;
	/* a logged used ring must be inside the bitmap, as in vhost */
	if ((a->flags & (1U << VHOST_VRING_F_LOG)) && vq->log_base &&
	    !vblk_log_range_ok(vq->log_base, a->log_guest_addr,
			       sizeof(struct vblk_used) + sizeof(__le16) +
			       num * sizeof(struct vblk_used_elem)))
		return -EINVAL;
	if (vq->inflight) {
		/*
		 * The rings stay where the requests in flight will complete;
		 * only the used ring's logging may change: the VMM turns it on
		 * and off while the guest runs (live migration starts or
		 * ends), and QEMU aborts the VM when that fails.
		 */
		if (vq->desc != u64_to_user_ptr(a->desc_user_addr) ||
		    vq->avail != u64_to_user_ptr(a->avail_user_addr) ||
		    vq->used != u64_to_user_ptr(a->used_user_addr))
			return -EBUSY;
		vq->log_used = a->flags & (1U << VHOST_VRING_F_LOG);
		vq->log_addr = a->log_guest_addr;
		return 0;
	}

	vq->desc = u64_to_user_ptr(a->desc_user_addr);
	vq->avail = u64_to_user_ptr(a->avail_user_addr);
	vq->used = u64_to_user_ptr(a->used_user_addr);
	vq->log_used = a->flags & (1U << VHOST_VRING_F_LOG);
	vq->log_addr = a->log_guest_addr;
	vq->need_init = true;
	vq->broken = false;
	vblk_worker_kick(vq);
	return 0;
}

static long vblk_set_vring_kick(struct vblk_vq *vq, int fd)
{
	struct file *file = NULL, *old;
	int ret;

	if (fd != VHOST_FILE_UNBIND) {
		file = eventfd_fget(fd);
		if (IS_ERR(file))
			return PTR_ERR(file);
	}

	/* Created in the owner's context so it joins the owner's cgroups. */
	if (file && !vq->worker) {
		ret = vblk_worker_start(vq);
		if (ret) {
			fput(file);
			return ret;
		}
	}

	mutex_lock(&vq->mutex);
	vblk_poll_stop(vq);
	old = vq->kick;
	vq->kick = file;
	vq->stopped = false;
	ret = 0;
	if (file) {
		ret = vblk_poll_start(vq, file);
		if (ret) {
			vq->kick = NULL;
			fput(file);
		}
	}
	mutex_unlock(&vq->mutex);

	if (old)
		fput(old);
	return ret;
}

static long vblk_set_vring_eventfd(struct vblk_vq *vq, int fd, bool err)
{
	struct eventfd_ctx *ctx = NULL, *old;

	if (fd != VHOST_FILE_UNBIND) {
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}
	mutex_lock(&vq->mutex);
	if (err) {
		old = vq->err;
		vq->err = ctx;
	} else {
		old = vq->call;
		vq->call = ctx;
	}
	mutex_unlock(&vq->mutex);
	if (old)
		eventfd_ctx_put(old);
	return 0;
}

static long vblk_get_vring_base(struct vblk_vq *vq, struct vhost_vring_state *s)
{
	/* Stop taking new requests, then let the in-flight ones finish. */
	mutex_lock(&vq->mutex);
	vq->stopped = true;
	mutex_unlock(&vq->mutex);
	vblk_vq_drain(vq);
	mutex_lock(&vq->mutex);
	s->num = vq->last_avail_idx;
	mutex_unlock(&vq->mutex);
	return 0;
}

long vblk_vq_ioctl(struct vblk_dev *dev, unsigned int cmd, void __user *argp)
{
	struct vhost_vring_state s;
	struct vhost_vring_addr a;
	struct vhost_vring_file f;
	struct vblk_vq *vq;
	u32 idx;
	long ret;

	switch (cmd) {
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_BASE:
	case VHOST_GET_VRING_BASE:
	case VHOST_SET_VRING_ADDR:
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
	case VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
	case VHOST_GET_VRING_BUSYLOOP_TIMEOUT:
		break;
	default:
		return -ENOTTY;
	}

	/* Every one of these structures starts with the u32 queue index. */
	if (get_user(idx, (u32 __user *)argp))
		return -EFAULT;
	if (idx >= dev->nvqs)
		return -ENOBUFS;
	vq = &dev->vqs[idx];

	switch (cmd) {
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_BASE:
		if (copy_from_user(&s, argp, sizeof(s)))
			return -EFAULT;
		mutex_lock(&vq->mutex);
		if (cmd == VHOST_SET_VRING_NUM)
			ret = vblk_set_vring_num(vq, &s);
		else
			ret = vblk_set_vring_base(vq, &s);
		mutex_unlock(&vq->mutex);
		return ret;
	case VHOST_GET_VRING_BASE:
		s.index = idx;
		ret = vblk_get_vring_base(vq, &s);
		if (!ret && copy_to_user(argp, &s, sizeof(s)))
			ret = -EFAULT;
		return ret;
	case VHOST_SET_VRING_ADDR:
		if (copy_from_user(&a, argp, sizeof(a)))
			return -EFAULT;
		mutex_lock(&vq->mutex);
		ret = vblk_set_vring_addr(vq, &a);
		mutex_unlock(&vq->mutex);
		return ret;
	case VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
		/* microseconds; takes effect at the worker's next idle moment */
		if (copy_from_user(&s, argp, sizeof(s)))
			return -EFAULT;
		if (s.num > VBLK_MAX_BUSYLOOP_US)
			return -EINVAL;
		WRITE_ONCE(vq->busyloop_us, s.num);
		return 0;
	case VHOST_GET_VRING_BUSYLOOP_TIMEOUT:
		s.index = idx;
		s.num = READ_ONCE(vq->busyloop_us);
		return copy_to_user(argp, &s, sizeof(s)) ? -EFAULT : 0;
	default:
		if (copy_from_user(&f, argp, sizeof(f)))
			return -EFAULT;
		if (cmd == VHOST_SET_VRING_KICK)
			return vblk_set_vring_kick(vq, f.fd);
		return vblk_set_vring_eventfd(vq, f.fd,
					      cmd == VHOST_SET_VRING_ERR);
	}
}
