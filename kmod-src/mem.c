// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: the guest memory table (VHOST_SET_MEM_TABLE) and
 * guest-physical to VMM-virtual address translation.
 */
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uaccess.h>
#include <linux/overflow.h>
#include <linux/vhost.h>

#include "vblk.h"

static int vblk_region_cmp(const void *a, const void *b)
{
	const struct vblk_region *ra = a, *rb = b;

	if (ra->gpa < rb->gpa)
		return -1;
	return ra->gpa > rb->gpa;
}

struct vblk_mem *vblk_mem_from_user(void __user *argp, long *err)
{
	struct vhost_memory hdr;
	struct vhost_memory_region __user *uregions;
	struct vblk_mem *mem;
	u32 i;

	if (copy_from_user(&hdr, argp, sizeof(hdr))) {
		*err = -EFAULT;
		return NULL;
	}
	if (hdr.nregions > vblk_max_mem_regions) {
		*err = -E2BIG;
		return NULL;
	}
	mem = kvzalloc(struct_size(mem, r, hdr.nregions), GFP_KERNEL_ACCOUNT);
	if (!mem) {
		*err = -ENOMEM;
		return NULL;
	}
	mem->nregions = hdr.nregions;
	uregions = (struct vhost_memory_region __user *)
		((char __user *)argp + sizeof(hdr));

	for (i = 0; i < hdr.nregions; i++) {
		struct vhost_memory_region ur;
		u64 end;

		if (copy_from_user(&ur, &uregions[i], sizeof(ur))) {
			*err = -EFAULT;
			goto fail;
		}
		*err = -EINVAL;
		if (!ur.memory_size || ur.flags_padding)
			goto fail;
		if (check_add_overflow(ur.guest_phys_addr, ur.memory_size - 1,
				       &end) ||
		    check_add_overflow(ur.userspace_addr, ur.memory_size - 1,
				       &end))
			goto fail;
		*err = -EFAULT;
		if (ur.userspace_addr != (unsigned long)ur.userspace_addr ||
		    ur.memory_size != (unsigned long)ur.memory_size ||
		    !access_ok(u64_to_user_ptr(ur.userspace_addr),
			       ur.memory_size))
			goto fail;
		mem->r[i].gpa = ur.guest_phys_addr;
		mem->r[i].size = ur.memory_size;
		mem->r[i].hva = ur.userspace_addr;
	}

	sort(mem->r, mem->nregions, sizeof(mem->r[0]), vblk_region_cmp, NULL);
	for (i = 1; i < mem->nregions; i++) {
		if (mem->r[i].gpa <= mem->r[i - 1].gpa + mem->r[i - 1].size - 1) {
			*err = -EINVAL;
			goto fail;
		}
	}
	return mem;

fail:
	kvfree(mem);
	return NULL;
}

/* The region holding @gpa, or NULL. */
const struct vblk_region *vblk_mem_find(const struct vblk_mem *mem, u64 gpa)
{
	u32 lo = 0, hi;

	if (!mem)
		return NULL;
	hi = mem->nregions;
	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;
		const struct vblk_region *r = &mem->r[mid];

		if (gpa < r->gpa)
			hi = mid;
		else if (gpa - r->gpa >= r->size)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/* Copy @len bytes at guest address @gpa, possibly spanning regions. */
int vblk_copy_from_guest(struct vblk_vq *vq, void *dst, u64 gpa, size_t len)
{
	while (len) {
		const struct vblk_region *r = vblk_mem_find(vq->mem, gpa);
		u64 off, chunk;

		if (!r)
			return -EFAULT;
		off = gpa - r->gpa;
		chunk = min_t(u64, len, r->size - off);
		if (copy_from_user(dst, u64_to_user_ptr(r->hva + off), chunk))
			return -EFAULT;
		dst += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}
