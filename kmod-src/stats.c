// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: per-queue statistics, readable by an operator in debugfs:
 *
 *   /sys/kernel/debug/vhost-blk/<owner pid>-<device id>/queue<N>
 *
 * one "name value" line per counter of struct vblk_stats, plus the
 * requests in flight, and per device
 *
 *   /sys/kernel/debug/vhost-blk/<owner pid>-<device id>/slow_ops
 *
 * the device's slow-op threads (work.c): how many there are, requests
 * waiting for one, running, the most that ever ran at once, done, and how
 * many of those queued were buffered reads and writes that would have
 * blocked the queue's worker (io.c). The directory exists while the device
 * has an owner (VHOST_SET_OWNER to VHOST_RESET_OWNER or close); the counters
 * start at zero with each owner. The device id is unique while the module is loaded
 * and shown in /proc/<pid>/fdinfo/<fd> of the /dev/vhost-blk fd, so an
 * operator can tell a VM's disks apart. Without debugfs (not built in, or
 * locked down) there is nothing to read; the device works the same.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "vblk.h"

static struct dentry *vblk_debugfs_root;

#define vblk_stat_add(vq, name, n) \
	WRITE_ONCE((vq)->stats.name, (vq)->stats.name + (n))

/* An answered request (worker, vq->mutex held). */
void vblk_stats_count(struct vblk_vq *vq, struct vblk_req *req, u8 status)
{
	bool ok = status == VIRTIO_BLK_S_OK;

	vblk_stat_add(vq, requests, 1);
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		vblk_stat_add(vq, reads, 1);
		if (ok)
			vblk_stat_add(vq, read_bytes, req->len);
		break;
	case VIRTIO_BLK_T_OUT:
		vblk_stat_add(vq, writes, 1);
		if (ok)
			vblk_stat_add(vq, write_bytes, req->len);
		break;
	case VIRTIO_BLK_T_FLUSH:
		vblk_stat_add(vq, flushes, 1);
		break;
	case VIRTIO_BLK_T_DISCARD:
		vblk_stat_add(vq, discards, 1);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		vblk_stat_add(vq, write_zeroes, 1);
		break;
	default:
		vblk_stat_add(vq, others, 1);
		break;
	}
	if (status == VIRTIO_BLK_S_IOERR)
		vblk_stat_add(vq, errors, 1);
	else if (status == VIRTIO_BLK_S_UNSUPP)
		vblk_stat_add(vq, unsupported, 1);
}

void vblk_stats_flush_skipped(struct vblk_vq *vq)
{
	vblk_stat_add(vq, flushes_skipped, 1);
}

/* A request taken off the avail ring: found by the busy-poll or not. */
void vblk_stats_found(struct vblk_vq *vq)
{
	if (vq->poll_found)
		vblk_stat_add(vq, found_by_poll, 1);
	else
		vblk_stat_add(vq, found_by_kick, 1);
}

/* Pages newly marked dirty in the VMM's log (live migration). */
void vblk_stats_dirty(struct vblk_vq *vq, u64 pages)
{
	vblk_stat_add(vq, dirty_pages, pages);
}

static int vblk_stats_show(struct seq_file *m, void *unused)
{
	struct vblk_vq *vq = m->private;
	const struct vblk_stats *st = &vq->stats;

	seq_printf(m, "requests %llu\n", READ_ONCE(st->requests));
	seq_printf(m, "reads %llu\n", READ_ONCE(st->reads));
	seq_printf(m, "read_bytes %llu\n", READ_ONCE(st->read_bytes));
	seq_printf(m, "writes %llu\n", READ_ONCE(st->writes));
	seq_printf(m, "write_bytes %llu\n", READ_ONCE(st->write_bytes));
	seq_printf(m, "flushes %llu\n", READ_ONCE(st->flushes));
	seq_printf(m, "flushes_skipped %llu\n", READ_ONCE(st->flushes_skipped));
	seq_printf(m, "discards %llu\n", READ_ONCE(st->discards));
	seq_printf(m, "write_zeroes %llu\n", READ_ONCE(st->write_zeroes));
	seq_printf(m, "others %llu\n", READ_ONCE(st->others));
	seq_printf(m, "errors %llu\n", READ_ONCE(st->errors));
	seq_printf(m, "unsupported %llu\n", READ_ONCE(st->unsupported));
	seq_printf(m, "dirty_pages %llu\n", READ_ONCE(st->dirty_pages));
	seq_printf(m, "found_by_poll %llu\n", READ_ONCE(st->found_by_poll));
	seq_printf(m, "found_by_kick %llu\n", READ_ONCE(st->found_by_kick));
	seq_printf(m, "inflight %u\n", READ_ONCE(vq->inflight));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vblk_stats);

static int vblk_slow_stats_show(struct seq_file *m, void *unused)
{
	const struct vblk_slow *sl = &((struct vblk_dev *)m->private)->slow;

	seq_printf(m, "threads %u\n", READ_ONCE(sl->nthreads));
	seq_printf(m, "queued %u\n", READ_ONCE(sl->queued));
	seq_printf(m, "running %u\n", READ_ONCE(sl->running));
	seq_printf(m, "running_max %u\n", READ_ONCE(sl->running_max));
	seq_printf(m, "done %llu\n", READ_ONCE(sl->done));
	seq_printf(m, "rw %llu\n", READ_ONCE(sl->rw));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vblk_slow_stats);

/*
 * VHOST_SET_OWNER (dev->mutex held, no worker runs): counters from zero,
 * files named after the new owner. Failures only mean no statistics.
 */
void vblk_stats_dev_add(struct vblk_dev *dev)
{
	char name[32];
	unsigned int i;

	for (i = 0; i < dev->nvqs; i++)
		memset(&dev->vqs[i].stats, 0, sizeof(dev->vqs[i].stats));
	snprintf(name, sizeof(name), "%d-%u", dev->owner_pid, dev->id);
	dev->debugfs = debugfs_create_dir(name, vblk_debugfs_root);
	for (i = 0; i < dev->nvqs; i++) {
		snprintf(name, sizeof(name), "queue%u", i);
		debugfs_create_file(name, 0400, dev->debugfs, &dev->vqs[i],
				    &vblk_stats_fops);
	}
	debugfs_create_file("slow_ops", 0400, dev->debugfs, dev,
			    &vblk_slow_stats_fops);
}

/* Reset or release, before the queues go: waits for readers of the files. */
void vblk_stats_dev_remove(struct vblk_dev *dev)
{
	debugfs_remove(dev->debugfs);
	dev->debugfs = NULL;
}

void vblk_stats_init(void)
{
	vblk_debugfs_root = debugfs_create_dir("vhost-blk", NULL);
}

void vblk_stats_exit(void)
{
	debugfs_remove(vblk_debugfs_root);
}
