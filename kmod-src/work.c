// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: flush (coalescing in flush.c), discard and write zeroes. They
 * may sleep for long, so they run on the vhost-blk workqueue (not in the
 * queue's worker), with the backend opener's credentials, and come back
 * through vq->done like asynchronous reads and writes.
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
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

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

void vblk_work_fn(struct work_struct *work)
{
	struct vblk_req *req = container_of(work, struct vblk_req, work);
	const struct cred *old = override_creds(req->file->f_cred);

	if (req->type == VIRTIO_BLK_T_FLUSH) {
		req->ret = vblk_flush_run(req);
	} else {
		req->ret = vblk_dwz(req);
		if (req->ret == -EOPNOTSUPP)
			vblk_dwz_unsupported(req);
	}
	revert_creds(old);
	vblk_req_queue_done(req);
}
