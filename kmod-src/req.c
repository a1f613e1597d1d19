// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: virtio-blk request handling.
 *
 * Parses the request header, checks the request against the backend, hands
 * data transfers to backend.c and finishes requests: status byte, dirty log,
 * used ring entry, return to the per-queue pool.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uio.h>

#include "vblk.h"
#include "trace.h"

/* Preallocate min(@num, pool_max) requests; no request in flight. */
int vblk_pool_alloc(struct vblk_vq *vq, unsigned int num)
{
	unsigned int n = min(num, vq->dev->pool_max);
	unsigned int cap = vq->dev->seg_max + VBLK_IOV_SLACK;
	size_t size = ALIGN(sizeof(struct vblk_req) +
			    cap * sizeof(struct iovec), L1_CACHE_BYTES);
	unsigned int i;
	void *pool;

	pool = kvcalloc(n, size, GFP_KERNEL_ACCOUNT);
	if (!pool)
		return -ENOMEM;
	vblk_pool_free(vq);
	vq->pool = pool;
	vq->pool_size = n;
	vq->req_size = size;
	for (i = 0; i < n; i++) {
		struct vblk_req *req = pool + i * size;

		req->vq = vq;
		req->iov_cap = cap;
		INIT_LIST_HEAD(&req->slow);
		list_add_tail(&req->free, &vq->free_reqs);
	}
	return 0;
}

void vblk_pool_free(struct vblk_vq *vq)
{
	INIT_LIST_HEAD(&vq->free_reqs);
	kvfree(vq->pool);
	vq->pool = NULL;
	vq->pool_size = 0;
}

struct vblk_req *vblk_req_get(struct vblk_vq *vq)
{
	struct vblk_req *req;

	req = list_first_entry_or_null(&vq->free_reqs, struct vblk_req, free);
	if (req)
		list_del(&req->free);
	return req;
}

static void vblk_req_put(struct vblk_vq *vq, struct vblk_req *req)
{
	list_add(&req->free, &vq->free_reqs);
}

/* Log the first @len bytes of the writable (guest-bound) pieces. */
static int vblk_req_log_data(struct vblk_vq *vq, struct vblk_req *req, u64 len)
{
	unsigned int i;
	int ret;

	for (i = req->n_out; i < req->n_iov && len; i++) {
		u64 n = min_t(u64, len, req->iov[i].iov_len);

		ret = vblk_log_hva(vq, (unsigned long)req->iov[i].iov_base, n);
		if (ret)
			return ret;
		len -= n;
	}
	return 0;
}

/*
 * Answer a request: status byte, dirty log, used entry, back to pool.
 * The log covers all the data the request may have written into the guest
 * (req->dirty_len), whatever the status: a failed or short read may have
 * filled some of the buffers, and a migrating VMM must copy them again.
 */
void vblk_req_finish(struct vblk_vq *vq, struct vblk_req *req, u8 status)
{
	u32 used_len = status == VIRTIO_BLK_S_OK ? req->used_len : 0;

	vblk_stats_count(vq, req, status);
	trace_vhost_blk_complete(vq, req, status);
	if (put_user(status, req->status)) {
		vblk_vq_set_broken(vq, "cannot write status byte");
	} else {
		used_len++;
		if (vblk_logging(vq) &&
		    (vblk_req_log_data(vq, req, req->dirty_len) ||
		     vblk_log_hva(vq, (unsigned long)req->status, 1)))
			vblk_vq_set_broken(vq, "cannot write dirty log");
		if (vblk_vq_add_used(vq, req->head, used_len))
			vblk_vq_set_broken(vq, "cannot write used ring");
	}
	vblk_req_put(vq, req);
}

/* A request handed to the backend came back (worker, vq->mutex held). */
void vblk_req_complete(struct vblk_vq *vq, struct vblk_req *req)
{
	u8 status;

	vblk_io_end(req);
	req->flags = 0;

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		status = req->ret >= 0 && (u64)req->ret == req->len ?
			 VIRTIO_BLK_S_OK :
			 VIRTIO_BLK_S_IOERR;
		break;
	default:
		if (!req->ret)
			status = VIRTIO_BLK_S_OK;
		else if (req->ret == -EOPNOTSUPP)
			status = VIRTIO_BLK_S_UNSUPP;
		else
			status = VIRTIO_BLK_S_IOERR;
		break;
	}
	if (req->type != VIRTIO_BLK_T_IN && req->type != VIRTIO_BLK_T_FLUSH)
		vblk_flush_wrote(req);	/* OUT, DISCARD, WRITE_ZEROES */
	if (status != VIRTIO_BLK_S_OK)
		vblk_dbg(vq->dev, "queue %u: request type %u sector %llu failed: %ld\n",
			 vq->index, req->type, req->sector, req->ret);
	vblk_req_finish(vq, req, status);
	/* Last: drainers may free the backend once this reaches zero. */
	WRITE_ONCE(vq->inflight, vq->inflight - 1);
	if (!vq->inflight)
		wake_up(&vq->drain_wq);
}

/* Is [sector, sector + nsect) inside the backend? */
static bool vblk_range_ok(struct vblk_backend *be, u64 sector, u64 nsect)
{
	return sector <= be->capacity && nsect <= be->capacity - sector;
}

static u8 vblk_req_prepare_dwz(struct vblk_backend *be, struct vblk_req *req,
			       struct iov_iter *out)
{
	size_t bytes = iov_iter_count(out);
	u32 flag = req->type == VIRTIO_BLK_T_DISCARD ?
		   VHOST_BLK_INFO_F_DISCARD : VHOST_BLK_INFO_F_WRITE_ZEROES;
	u32 allowed = req->type == VIRTIO_BLK_T_DISCARD ? 0 :
		      VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	u16 i;

	if (!(vblk_backend_flags(be) & flag))
		return VIRTIO_BLK_S_UNSUPP;
	if (be->info_flags & VHOST_BLK_INFO_F_READONLY)
		return VIRTIO_BLK_S_IOERR;
	if (!bytes || bytes % sizeof(struct vblk_dwz_seg) ||
	    bytes / sizeof(struct vblk_dwz_seg) > VBLK_MAX_DWZ_SEGS)
		return VIRTIO_BLK_S_IOERR;
	req->nr_segs = bytes / sizeof(struct vblk_dwz_seg);
	if (copy_from_iter(req->segs, bytes, out) != bytes)
		return VIRTIO_BLK_S_IOERR;
	for (i = 0; i < req->nr_segs; i++) {
		const struct vblk_dwz_seg *s = &req->segs[i];

		if (le32_to_cpu(s->flags) & ~allowed)
			return VIRTIO_BLK_S_UNSUPP;
		if (!vblk_range_ok(be, le64_to_cpu(s->sector),
				   le32_to_cpu(s->num_sectors)))
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/*
 * Serve one request whose chain was walked into @req. Either finishes it
 * right away or hands it to the backend (vq->inflight counts those).
 */
void vblk_req_handle(struct vblk_vq *vq, struct vblk_req *req)
{
	struct vblk_backend *be = vq->be;
	struct vblk_outhdr hdr;
	struct iov_iter out, in;
	u8 status = VIRTIO_BLK_S_IOERR;
	size_t n;

	req->used_len = 0;
	req->dirty_len = 0;
	req->flags = 0;
	req->nr_segs = 0;
	req->type = U32_MAX;
	req->sector = 0;
	req->be = be;
	req->file = be->file;

	if (req->bad || req->out_len < sizeof(hdr) ||
	    req->out_len > VBLK_MAX_IO_BYTES || req->in_len > VBLK_MAX_IO_BYTES)
		goto finish;

	iov_iter_init(&out, ITER_SOURCE, req->iov, req->n_out, req->out_len);
	iov_iter_init(&in, ITER_DEST, req->iov + req->n_out,
		      req->n_iov - req->n_out, req->in_len);
	if (copy_from_iter(&hdr, sizeof(hdr), &out) != sizeof(hdr))
		goto finish;
	req->type = le32_to_cpu(hdr.type);
	req->sector = le64_to_cpu(hdr.sector);
	trace_vhost_blk_submit(vq, req);

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool write = req->type == VIRTIO_BLK_T_OUT;
		struct iov_iter *data = write ? &out : &in;

		/* Only the header is readable on IN, only status on OUT. */
		if (write ? req->in_len : iov_iter_count(&out))
			goto finish;
		if (write && (be->info_flags & VHOST_BLK_INFO_F_READONLY))
			goto finish;
		req->len = iov_iter_count(data);
		if (req->len % 512 ||
		    !vblk_range_ok(be, req->sector,
				   req->len >> VBLK_SECTOR_SHIFT))
			goto finish;
		if (!req->len) {
			status = VIRTIO_BLK_S_OK;
			goto finish;
		}
		if (!write)
			req->used_len = req->dirty_len = req->len;
		vq->inflight++;
		vblk_io_start_rw(vq, req, data, write);
		return;
	}
	case VIRTIO_BLK_T_FLUSH:
		/* nothing completed since the last flush: nothing to sync */
		if (!vblk_flush_needed(req)) {
			vblk_stats_flush_skipped(vq);
			status = VIRTIO_BLK_S_OK;
			goto finish;
		}
		vq->inflight++;
		vblk_slow_queue(vq->dev, req);
		return;
	case VIRTIO_BLK_T_GET_ID:
		/* the device's serial (VHOST_BLK_SET_SERIAL), zero-padded */
		n = min_t(size_t, VIRTIO_BLK_ID_BYTES, iov_iter_count(&in));
		req->dirty_len = n;
		if (copy_to_iter(vq->serial, n, &in) != n)
			goto finish;
		req->used_len = n;
		status = VIRTIO_BLK_S_OK;
		goto finish;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = vblk_req_prepare_dwz(be, req, &out);
		if (status != VIRTIO_BLK_S_OK)
			goto finish;
		vq->inflight++;
		vblk_slow_queue(vq->dev, req);
		return;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		goto finish;
	}

finish:
	vblk_req_finish(vq, req, status);
}
