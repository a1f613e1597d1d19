// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: system-wide counts of owned devices and worker threads, held
 * below the max_devices and max_workers module parameters (main.c), so that
 * no user of /dev/vhost-blk can make the module create threads or pin
 * memory without bound. A limit lowered below the current count refuses new
 * devices or workers until enough are gone; nothing running is stopped.
 */
#include <linux/atomic.h>

#include "vblk.h"

static atomic_t vblk_devices = ATOMIC_INIT(0);
static atomic_t vblk_workers = ATOMIC_INIT(0);

/* Take one of @limit; false when all are taken. */
static bool vblk_quota_get(atomic_t *count, unsigned int limit)
{
	int cur = atomic_read(count);

	do {
		if ((unsigned int)cur >= limit)
			return false;
	} while (!atomic_try_cmpxchg(count, &cur, cur + 1));
	return true;
}

/* VHOST_SET_OWNER: -EMFILE when max_devices devices have an owner. */
int vblk_quota_get_device(void)
{
	return vblk_quota_get(&vblk_devices, READ_ONCE(vblk_max_devices)) ?
	       0 : -EMFILE;
}

void vblk_quota_put_device(void)
{
	atomic_dec(&vblk_devices);
}

/* VHOST_SET_VRING_KICK: -ENOSPC when max_workers worker threads run. */
int vblk_quota_get_worker(void)
{
	return vblk_quota_get(&vblk_workers, READ_ONCE(vblk_max_workers)) ?
	       0 : -ENOSPC;
}

void vblk_quota_put_worker(void)
{
	atomic_dec(&vblk_workers);
}
