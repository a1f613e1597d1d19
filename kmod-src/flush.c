// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: FLUSH with fdatasync semantics, and flushes coalesced.
 *
 * A guest FLUSH must make stable every write the device completed before the
 * FLUSH was received; writes still in flight then are not covered (virtio-blk
 * semantics, as for a disk's volatile cache). Each backend counts completed
 * writes (OUT, DISCARD, WRITE_ZEROES, whatever their status) in a write
 * generation, bumped by the worker before the used entry is published, so
 * before the guest can know of the write. A FLUSH samples the generation
 * when the worker takes it off the ring:
 *
 *  - if a successful flush already covered that generation, nothing was
 *    completed since it started: the answer is OK at once, no fsync;
 *  - else vfs_fsync(file, 1) (fdatasync: data and the metadata needed to
 *    read it back, not timestamps) runs on one of the device's slow-op
 *    threads (work.c: in the VM's cgroups, at most slow_ops_per_device of a
 *    device's FLUSH/DISCARD/WRITE_ZEROES at a time, none waiting behind
 *    another device's), and on success the backend's flushed generation is
 *    raised to the sampled one.
 *
 * A write completing while a flush runs bumps the generation past what that
 * flush sampled, so the next FLUSH syncs again. A failed fsync covers
 * nothing. A new backend starts one generation ahead of its flushed one:
 * its first FLUSH always syncs (the VMM may have written to it before).
 */
#include <linux/atomic.h>
#include <linux/fs.h>

#include "vblk.h"

/* A write-type request came back (worker, before its used entry). */
void vblk_flush_wrote(struct vblk_req *req)
{
	atomic64_inc(&req->be->wgen);
	/* ordered before the used index the guest reads (smp_wmb in publish) */
	smp_mb__after_atomic();
}

/*
 * A FLUSH was taken off the ring (worker): sample the write generation.
 * Returns false when a completed flush covers it already.
 */
bool vblk_flush_needed(struct vblk_req *req)
{
	struct vblk_backend *be = req->be;

	/* the guest saw those writes complete before it queued this FLUSH */
	smp_mb();
	req->wgen = atomic64_read(&be->wgen);
	return atomic64_read(&be->flushed) < req->wgen;
}

/* A slow-op thread (work.c), with the backend opener's credentials. */
int vblk_flush_run(struct vblk_req *req)
{
	struct vblk_backend *be = req->be;
	s64 done;
	int ret;

	ret = vfs_fsync(req->file, 1);
	if (ret)
		return ret;
	done = atomic64_read(&be->flushed);
	while (done < (s64)req->wgen &&
	       !atomic64_try_cmpxchg(&be->flushed, &done, req->wgen))
		;
	return 0;
}
