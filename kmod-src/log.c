// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: dirty page logging for live migration.
 *
 * With VHOST_F_LOG_ALL acked and a log set by VHOST_SET_LOG_BASE, every
 * write into guest memory sets one bit per VHOST_PAGE_SIZE guest page in the
 * VMM's bitmap (bit n = guest page n, little-endian bit order).
 * The bitmap lives in the VMM's memory; we pin the page holding the bits and
 * set them atomically, as the VMM may clear them concurrently.
 */
#include <linux/mm.h>
#include <linux/highmem.h>
#include <linux/bitops.h>
#include <linux/uaccess.h>

#include "vblk.h"

#define VBLK_LOG_PAGE_SHIFT	12	/* VHOST_PAGE_SIZE */

/*
 * Set bits [first, last] of the log; all within one bitmap page. Counts in
 * @newly the bits that were clear (pages the VMM had not seen dirty yet).
 */
static int vblk_log_bits(unsigned long uaddr_page, u64 first_bit_in_page,
			 u64 nbits, u64 *newly)
{
	struct page *page;
	void *base;
	u64 i;
	int ret;

	ret = pin_user_pages_fast(uaddr_page, 1, FOLL_WRITE, &page);
	if (ret != 1)
		return ret < 0 ? ret : -EFAULT;
	base = kmap_local_page(page);
	for (i = 0; i < nbits; i++)
		if (!test_and_set_bit(first_bit_in_page + i, base))
			(*newly)++;
	kunmap_local(base);
	unpin_user_pages_dirty_lock(&page, 1, true);
	return 0;
}

int vblk_log_gpa(struct vblk_vq *vq, u64 gpa, u64 len)
{
	u64 pfn, last, newly = 0;
	const u64 bits_per_page = PAGE_SIZE * BITS_PER_BYTE;

	if (!len)
		return 0;
	if (gpa + len - 1 < gpa)
		return -EINVAL;
	pfn = gpa >> VBLK_LOG_PAGE_SHIFT;
	last = (gpa + len - 1) >> VBLK_LOG_PAGE_SHIFT;

	while (pfn <= last) {
		/* bit pfn sits in byte log_base + pfn / 8 */
		u64 byte = vq->log_base + pfn / BITS_PER_BYTE;
		u64 upage = byte & PAGE_MASK;
		u64 first = (byte - upage) * BITS_PER_BYTE + pfn % BITS_PER_BYTE;
		u64 n = min_t(u64, last - pfn + 1, bits_per_page - first);
		int ret;

		if (byte < vq->log_base || upage != (unsigned long)upage)
			return -EFAULT;
		ret = vblk_log_bits(upage, first, n, &newly);
		vblk_stats_dirty(vq, newly);
		newly = 0;
		if (ret)
			return ret;
		pfn += n;
	}
	vq->logged = true;
	return 0;
}

/* Log a write to VMM address range [hva, hva + len). */
int vblk_log_hva(struct vblk_vq *vq, unsigned long hva, u64 len)
{
	const struct vblk_mem *mem = vq->mem;
	u32 i;
	int ret;

	if (!mem || !len)
		return 0;
	/* Guest memory may be aliased: log every region mapping the range. */
	for (i = 0; i < mem->nregions; i++) {
		const struct vblk_region *r = &mem->r[i];
		u64 start = max_t(u64, hva, r->hva);
		u64 end = min_t(u64, hva + len, r->hva + r->size);

		if (start >= end)
			continue;
		ret = vblk_log_gpa(vq, r->gpa + (start - r->hva), end - start);
		if (ret)
			return ret;
	}
	return 0;
}

/* Log a write to the used ring at byte @offset. */
int vblk_log_used(struct vblk_vq *vq, u64 offset, u64 len)
{
	if (!vq->log_used || !vblk_logging(vq))
		return 0;
	return vblk_log_gpa(vq, vq->log_addr + offset, len);
}

/* Do the log bits of guest range [gpa, gpa + len) lie in user memory at @base? */
bool vblk_log_range_ok(u64 base, u64 gpa, u64 len)
{
	u64 first, last;

	if (!len)
		return true;
	if (gpa + len - 1 < gpa)
		return false;
	first = (gpa >> VBLK_LOG_PAGE_SHIFT) / BITS_PER_BYTE;
	last = ((gpa + len - 1) >> VBLK_LOG_PAGE_SHIFT) / BITS_PER_BYTE;
	if (base + first < base || base + first != (unsigned long)(base + first))
		return false;
	return access_ok(u64_to_user_ptr(base + first), last - first + 1);
}

/*
 * Does a bitmap at @base cover every page of @mem and the used ring of every
 * queue that logs it? Checked whenever one of them or VHOST_F_LOG_ALL
 * changes, as vhost_log_access_ok() does, so that logging never fails later.
 * dev->mutex held (the queues' log settings only change under it).
 */
bool vblk_log_covers(struct vblk_dev *dev, const struct vblk_mem *mem, u64 base)
{
	unsigned int i;

	for (i = 0; mem && i < mem->nregions; i++)
		if (!vblk_log_range_ok(base, mem->r[i].gpa, mem->r[i].size))
			return false;
	for (i = 0; i < dev->nvqs; i++) {
		struct vblk_vq *vq = &dev->vqs[i];

		if (vq->log_used && vq->num &&
		    !vblk_log_range_ok(base, vq->log_addr,
				       sizeof(struct vblk_used) + sizeof(__le16) +
				       vq->num * sizeof(struct vblk_used_elem)))
			return false;
	}
	return true;
}
