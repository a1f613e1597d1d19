// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: split virtqueue engine.
 *
 * Reads the avail ring, walks descriptor chains (direct and indirect) into
 * iovecs of VMM addresses, fills the used ring, and decides when to notify
 * the guest (VRING_AVAIL_F_NO_INTERRUPT or VIRTIO_RING_F_EVENT_IDX).
 * Everything the guest wrote is treated as hostile: indexes are bounded,
 * chains are bounded by the ring size, addresses must be in the memory table.
 * All functions here run in the queue's worker with vq->mutex held, but for
 * vblk_vq_avail_moved() (the busy-poll's look at the ring).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/uaccess.h>
#include <linux/virtio_ring.h>

#include "vblk.h"

#define VBLK_DESC_F_NEXT	1
#define VBLK_DESC_F_WRITE	2
#define VBLK_DESC_F_INDIRECT	4

static __le16 __user *vblk_used_event(struct vblk_vq *vq)
{
	return &vq->avail->ring[vq->num];
}

static __le16 __user *vblk_avail_event(struct vblk_vq *vq)
{
	return (__le16 __user *)&vq->used->ring[vq->num];
}

/*
 * The ring is unusable (bad index, unreadable ring, chain we cannot make
 * sense of): stop the queue and tell the VMM through the err eventfd.
 */
void vblk_vq_set_broken(struct vblk_vq *vq, const char *why)
{
	if (vq->broken)
		return;
	vq->broken = true;
	vblk_warn(vq->dev, "queue %u broken: %s\n", vq->index, why);
	if (vq->err)
		vblk_eventfd_signal(vq->err);
}

int vblk_vq_init_access(struct vblk_vq *vq)
{
	__le16 idx;

	if (get_user(idx, &vq->used->idx))
		return -EFAULT;
	vq->used_idx = le16_to_cpu(idx);
	vq->used_flags = 0;
	vq->signalled_used_valid = false;
	vq->poll_found = false;
	vq->need_init = false;
	return 0;
}

/* 0 and *head on success, -EAGAIN when the ring is empty, -EIO if broken. */
int vblk_vq_next_head(struct vblk_vq *vq, u16 *head)
{
	__le16 v;
	u16 h;

	if (vq->avail_idx == vq->last_avail_idx) {
		u16 idx;

		if (get_user(v, &vq->avail->idx)) {
			vblk_vq_set_broken(vq, "cannot read avail idx");
			return -EIO;
		}
		idx = le16_to_cpu(v);
		if ((u16)(idx - vq->last_avail_idx) > vq->num) {
			vblk_vq_set_broken(vq, "avail idx moved too far");
			return -EIO;
		}
		vq->avail_idx = idx;
		if (idx == vq->last_avail_idx)
			return -EAGAIN;
		/* Read ring entries only after seeing the index. */
		smp_rmb();
	}

	if (get_user(v, &vq->avail->ring[vq->last_avail_idx & (vq->num - 1)])) {
		vblk_vq_set_broken(vq, "cannot read avail ring");
		return -EIO;
	}
	h = le16_to_cpu(v);
	if (h >= vq->num) {
		vblk_vq_set_broken(vq, "head index out of range");
		return -EIO;
	}
	vq->last_avail_idx++;
	*head = h;
	return 0;
}

/* Append one iovec; on overflow keep overwriting the last slot. */
static void vblk_walk_push(struct vblk_req *req, unsigned long base, u64 len,
			   bool write)
{
	struct iovec *iov;

	if (req->n_iov == req->iov_cap) {
		req->bad = true;
		iov = &req->iov[req->iov_cap - 1];
		if (write && req->n_out == req->iov_cap)
			req->n_out--;
	} else {
		iov = &req->iov[req->n_iov++];
	}
	iov->iov_base = (void __user *)base;
	iov->iov_len = len;
	if (!write)
		req->n_out = req->n_iov;
}

/* Translate one descriptor's buffer into iovecs. */
static void vblk_walk_add(struct vblk_vq *vq, struct vblk_req *req, u64 gpa,
			  u32 len, bool write)
{
	u64 left = len;

	if (!len)
		return;
	if (write) {
		req->in_len += len;
	} else {
		/* Device-readable after device-writable: malformed. */
		if (req->in_len) {
			req->bad = true;
			return;
		}
		req->out_len += len;
	}

	while (left) {
		const struct vblk_region *r = vblk_mem_find(vq->mem, gpa);
		u64 off, chunk;

		if (!r) {
			/* Keep the position so the status byte stays last. */
			req->bad = true;
			vblk_walk_push(req, 0, left, write);
			if (write)
				req->last_poison = true;
			return;
		}
		off = gpa - r->gpa;
		chunk = min_t(u64, left, r->size - off);
		vblk_walk_push(req, r->hva + off, chunk, write);
		if (write)
			req->last_poison = false;
		gpa += chunk;
		left -= chunk;
	}
}

static int vblk_walk_indirect(struct vblk_vq *vq, struct vblk_req *req,
			      u64 table, u32 len)
{
	unsigned int count, i = 0, seen = 0;
	struct vblk_desc d;
	u16 flags;

	if (!vblk_has(vq->acked, VIRTIO_RING_F_INDIRECT_DESC)) {
		vblk_vq_set_broken(vq, "indirect descriptor not negotiated");
		return -EIO;
	}
	if (!len || len % sizeof(d) || len / sizeof(d) > VBLK_MAX_QUEUE_SIZE) {
		vblk_vq_set_broken(vq, "bad indirect table length");
		return -EIO;
	}
	count = len / sizeof(d);

	for (;;) {
		if (++seen > count) {
			vblk_vq_set_broken(vq, "indirect chain longer than its table");
			return -EIO;
		}
		if (vblk_copy_from_guest(vq, &d, table + i * sizeof(d),
					 sizeof(d))) {
			vblk_vq_set_broken(vq, "cannot read indirect table");
			return -EIO;
		}
		flags = le16_to_cpu(d.flags);
		if (flags & VBLK_DESC_F_INDIRECT) {
			vblk_vq_set_broken(vq, "nested indirect descriptor");
			return -EIO;
		}
		vblk_walk_add(vq, req, le64_to_cpu(d.addr), le32_to_cpu(d.len),
			      flags & VBLK_DESC_F_WRITE);
		if (!(flags & VBLK_DESC_F_NEXT))
			return 0;
		i = le16_to_cpu(d.next);
		if (i >= count) {
			vblk_vq_set_broken(vq, "indirect next out of range");
			return -EIO;
		}
	}
}

/*
 * Walk the chain starting at @head into req->iov: first the device-readable
 * pieces (req->n_out of them), then the device-writable ones. Sets
 * req->status to the last writable byte. Returns -EIO if the ring is broken
 * (the request cannot be answered), 0 otherwise; req->bad tells whether the
 * request itself is malformed (answer VIRTIO_BLK_S_IOERR).
 */
int vblk_vq_walk(struct vblk_vq *vq, u16 head, struct vblk_req *req)
{
	unsigned int seen = 0;
	struct vblk_desc d;
	u16 i = head, flags;
	struct iovec *last;
	int ret;

	req->head = head;
	req->bad = false;
	req->last_poison = false;
	req->n_iov = 0;
	req->n_out = 0;
	req->out_len = 0;
	req->in_len = 0;
	req->status = NULL;

	for (;;) {
		if (++seen > vq->num) {
			vblk_vq_set_broken(vq, "descriptor chain longer than the ring");
			return -EIO;
		}
		if (copy_from_user(&d, &vq->desc[i], sizeof(d))) {
			vblk_vq_set_broken(vq, "cannot read descriptor");
			return -EIO;
		}
		flags = le16_to_cpu(d.flags);
		if (flags & VBLK_DESC_F_INDIRECT) {
			if (flags & VBLK_DESC_F_NEXT) {
				vblk_vq_set_broken(vq, "indirect with next");
				return -EIO;
			}
			ret = vblk_walk_indirect(vq, req, le64_to_cpu(d.addr),
						 le32_to_cpu(d.len));
			if (ret)
				return ret;
			break;
		}
		vblk_walk_add(vq, req, le64_to_cpu(d.addr), le32_to_cpu(d.len),
			      flags & VBLK_DESC_F_WRITE);
		if (!(flags & VBLK_DESC_F_NEXT))
			break;
		i = le16_to_cpu(d.next);
		if (i >= vq->num) {
			vblk_vq_set_broken(vq, "next index out of range");
			return -EIO;
		}
	}

	/* The status byte is the last device-writable byte. */
	if (req->n_iov == req->n_out || req->last_poison) {
		vblk_vq_set_broken(vq, "request without a status byte");
		return -EIO;
	}
	last = &req->iov[req->n_iov - 1];
	req->status = (u8 __user *)last->iov_base + last->iov_len - 1;
	last->iov_len--;
	req->in_len--;
	if (!last->iov_len)
		req->n_iov--;
	return 0;
}

static int vblk_vq_put_used_flags(struct vblk_vq *vq, u16 flags)
{
	if (put_user(cpu_to_le16(flags), &vq->used->flags))
		return -EFAULT;
	vq->used_flags = flags;
	return vblk_log_used(vq, offsetof(struct vblk_used, flags),
			     sizeof(vq->used->flags));
}

static int vblk_vq_put_avail_event(struct vblk_vq *vq, u16 idx)
{
	if (put_user(cpu_to_le16(idx), vblk_avail_event(vq)))
		return -EFAULT;
	return vblk_log_used(vq, (u8 __user *)vblk_avail_event(vq) -
			     (u8 __user *)vq->used, sizeof(__le16));
}

/*
 * Ask the guest not to kick: the worker is taking requests off the ring
 * anyway, or busy-polls avail->idx. Without EVENT_IDX that is the used
 * ring's NO_NOTIFY flag; with it, avail_event goes one behind the entries
 * taken, where the guest's next additions do not cross it. Either way
 * vq->used_flags has NO_NOTIFY while kicks are off.
 */
int vblk_vq_disable_notify(struct vblk_vq *vq)
{
	int ret;

	if (vq->used_flags & VRING_USED_F_NO_NOTIFY)
		return 0;
	if (!vblk_has(vq->acked, VIRTIO_RING_F_EVENT_IDX))
		return vblk_vq_put_used_flags(vq, VRING_USED_F_NO_NOTIFY);
	ret = vblk_vq_put_avail_event(vq, vq->last_avail_idx - 1);
	if (!ret)
		vq->used_flags |= VRING_USED_F_NO_NOTIFY;
	return ret;
}

/* Re-enable kicks; *more is set if buffers arrived meanwhile. */
int vblk_vq_enable_notify(struct vblk_vq *vq, bool *more)
{
	__le16 v;
	int ret;

	*more = false;
	if (vblk_has(vq->acked, VIRTIO_RING_F_EVENT_IDX)) {
		ret = vblk_vq_put_avail_event(vq, vq->last_avail_idx);
		if (!ret)
			vq->used_flags &= ~VRING_USED_F_NO_NOTIFY;
	} else if (vq->used_flags & VRING_USED_F_NO_NOTIFY) {
		ret = vblk_vq_put_used_flags(vq, 0);
	} else {
		ret = 0;
	}
	if (ret)
		return ret;

	/* The flag/event write must be visible before we re-read idx. */
	smp_mb();
	if (get_user(v, &vq->avail->idx))
		return -EFAULT;
	*more = le16_to_cpu(v) != vq->last_avail_idx;
	return 0;
}

/*
 * For the busy-poll, with preemption off and without vq->mutex (an ioctl
 * may move the ring meanwhile: the worst is a false yes): has the guest
 * added entries we have not taken? The index is read without faulting;
 * when that fails the answer is yes, and the pass that follows reads it
 * properly and decides.
 */
bool vblk_vq_avail_moved(struct vblk_vq *vq)
{
	struct vblk_avail __user *avail = READ_ONCE(vq->avail);
	u16 last = READ_ONCE(vq->last_avail_idx);
	__le16 v;
	int ret;

	if (READ_ONCE(vq->avail_idx) != last)
		return true;
	pagefault_disable();
	ret = get_user(v, &avail->idx);
	pagefault_enable();
	return ret || le16_to_cpu(v) != last;
}

/* Put one element in the used ring; published by vblk_vq_publish(). */
int vblk_vq_add_used(struct vblk_vq *vq, u16 head, u32 len)
{
	struct vblk_used_elem e = {
		.id = cpu_to_le32(head),
		.len = cpu_to_le32(len),
	};
	u16 slot = vq->used_idx & (vq->num - 1);

	if (copy_to_user(&vq->used->ring[slot], &e, sizeof(e)))
		return -EFAULT;
	if (vblk_log_used(vq, offsetof(struct vblk_used, ring) +
			  slot * sizeof(e), sizeof(e)))
		return -EFAULT;
	vq->used_idx++;
	vq->added++;
	return 0;
}

static bool vblk_vq_need_signal(struct vblk_vq *vq)
{
	__le16 v;
	u16 old, new;
	bool valid;

	if (!vblk_has(vq->acked, VIRTIO_RING_F_EVENT_IDX)) {
		if (get_user(v, &vq->avail->flags))
			return true;
		return !(le16_to_cpu(v) & VRING_AVAIL_F_NO_INTERRUPT);
	}
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new = vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	if (get_user(v, vblk_used_event(vq)))
		return true;
	return vring_need_event(le16_to_cpu(v), new, old);
}

/* Publish the used entries added since the last call and notify once. */
void vblk_vq_publish(struct vblk_vq *vq)
{
	if (vq->added) {
		vq->added = 0;
		/* Data, status bytes and used entries before the index. */
		smp_wmb();
		if (put_user(cpu_to_le16(vq->used_idx), &vq->used->idx) ||
		    vblk_log_used(vq, offsetof(struct vblk_used, idx),
				  sizeof(vq->used->idx))) {
			vblk_vq_set_broken(vq, "cannot write used ring");
		} else {
			/* Index write before reading the guest's event/flags. */
			smp_mb();
			if (vq->call && vblk_vq_need_signal(vq))
				vblk_eventfd_signal(vq->call);
		}
	}
	if (vq->logged) {
		vq->logged = false;
		if (vq->log_ctx)
			vblk_eventfd_signal(vq->log_ctx);
	}
}
