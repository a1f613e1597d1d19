/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-blk: internal definitions shared by the module's files.
 *
 * Locking:
 *   dev->mutex  serialises ioctls and release; taken before any vq->mutex.
 *   vq->mutex   held by the queue's worker while it touches the ring and by
 *               ioctls changing that queue. Device-wide state the worker
 *               needs (features, memory table, backend, log) is copied into
 *               each vq under its mutex (vblk_dev_sync_vqs), so no code path
 *               ever holds two vq mutexes.
 *   vq->done    lock-free list of finished requests, filled from any context
 *               (including hard IRQ), emptied by the worker.
 *
 * Memory per open device (x86_64, default parameters, measured):
 *   struct vblk_dev (344 B) + max_queues * struct vblk_vq (496 B): 4.2 KiB
 *   per queue whose size is set (VHOST_SET_VRING_NUM):
 *     min(num, max_inflight) requests of
 *     sizeof(struct vblk_req) (472 B) + (seg_max + VBLK_IOV_SLACK) * 16 B,
 *     cache-line aligned: 2624 B -> 128 requests = 328 KiB per active queue
 *   backend 56 B; memory table: 24 B per region.
 *   One kernel thread per queue that got a kick eventfd, and
 *   slow_ops_per_device slow-op threads per device with an owner.
 */
#ifndef VHOST_BLK_VBLK_H
#define VHOST_BLK_VBLK_H

#include <linux/types.h>
#include <linux/atomic.h>
#include <linux/mutex.h>
#include <linux/llist.h>
#include <linux/list.h>
#include <linux/wait.h>
#include <linux/poll.h>
#include <linux/fs.h>
#include <linux/uio.h>
#include <linux/spinlock.h>
#include <linux/eventfd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_config.h>
#include <linux/vhost_types.h>

#include "include/uapi/linux/vhost_blk.h"
#include "compat.h"

#define VBLK_MAX_QUEUE_SIZE	1024
#define VBLK_MAX_QUEUES		64
#define VBLK_IOV_SLACK		8	/* header, status, region splits */
#define VBLK_MAX_DWZ_SEGS	16	/* discard / write-zeroes segments */
#define VBLK_WEIGHT		256	/* requests per worker pass */
#define VBLK_MAX_BUSYLOOP_US	10000	/* longest busy-poll window */
#define VBLK_MAX_SLOW_OPS	16	/* slow-op threads per device */
#define VBLK_SECTOR_SHIFT	9
#define VBLK_MAX_IO_BYTES	(1U << 30)

/* Features we always offer. */
#define VBLK_FEATURES ((1ULL << VIRTIO_RING_F_INDIRECT_DESC) |	\
		       (1ULL << VIRTIO_RING_F_EVENT_IDX) |	\
		       (1ULL << VIRTIO_F_VERSION_1) |		\
		       (1ULL << VHOST_F_LOG_ALL) |		\
		       (1ULL << VIRTIO_BLK_F_SEG_MAX) |		\
		       (1ULL << VIRTIO_BLK_F_BLK_SIZE) |	\
		       (1ULL << VIRTIO_BLK_F_FLUSH) |		\
		       (1ULL << VIRTIO_BLK_F_MQ))
/* Features offered only when the attached backend supports them. */
#define VBLK_BACKEND_FEATURES ((1ULL << VIRTIO_BLK_F_RO) |		\
			       (1ULL << VIRTIO_BLK_F_DISCARD) |		\
			       (1ULL << VIRTIO_BLK_F_WRITE_ZEROES))

/* Module parameters (main.c). */
extern unsigned int vblk_max_queues;
extern unsigned int vblk_max_inflight;
extern unsigned int vblk_seg_max;
extern unsigned int vblk_max_mem_regions;
extern unsigned int vblk_busyloop_us;
extern unsigned int vblk_max_devices;
extern unsigned int vblk_max_workers;
extern unsigned int vblk_slow_ops_per_device;

/* Little-endian split ring layout (VIRTIO_F_VERSION_1 only). */
struct vblk_desc {
	__le64 addr;
	__le32 len;
	__le16 flags;
	__le16 next;
};

struct vblk_avail {
	__le16 flags;
	__le16 idx;
	__le16 ring[];		/* then __le16 used_event */
};

struct vblk_used_elem {
	__le32 id;
	__le32 len;
};

struct vblk_used {
	__le16 flags;
	__le16 idx;
	struct vblk_used_elem ring[];	/* then __le16 avail_event */
};

struct vblk_outhdr {
	__le32 type;
	__le32 ioprio;
	__le64 sector;
};

struct vblk_dwz_seg {
	__le64 sector;
	__le32 num_sectors;
	__le32 flags;
};

/* Memory table: guest physical -> VMM virtual, sorted by gpa. */
struct vblk_region {
	u64 gpa;
	u64 size;
	u64 hva;
};

struct vblk_mem {
	u32 nregions;
	struct vblk_region r[];
};

/* An attached backing file or block device. */
struct vblk_backend {
	struct file *file;	/* its f_cred is used for all I/O */
	u64 capacity;		/* 512-byte sectors */
	u32 blk_size;
	u32 info_flags;		/* VHOST_BLK_INFO_F_* */
	unsigned long unsupp;	/* VHOST_BLK_INFO_F_* found not to work (atomic bits) */
	u32 phys_blk_size;
	u32 opt_io_size;
	u32 discard_granularity;
	u32 max_discard_sectors;
	u32 max_write_zeroes_sectors;
	/*
	 * Flush coalescing (flush.c): @wgen counts writes completed on this
	 * backend (starting at 1: whatever was there before may be unstable),
	 * @flushed is the highest generation a successful flush covered.
	 */
	atomic64_t wgen;
	atomic64_t flushed;
};

/* Flags the backend serves: what it announced less what failed since. */
static inline u32 vblk_backend_flags(const struct vblk_backend *be)
{
	return be->info_flags & ~(u32)READ_ONCE(be->unsupp);
}

/* Request life cycle flags. */
#define VBLK_REQ_WRITE_STARTED	(1U << 0)	/* kiocb_end_write() due */
#define VBLK_REQ_QUEUED		(1U << 1)	/* read/write returned -EIOCBQUEUED */
#define VBLK_REQ_DSYNC		(1U << 2)	/* write must be stable when answered */

struct vblk_vq;

struct vblk_req {
	struct kiocb iocb;
	struct vblk_vq *vq;
	struct llist_node node;		/* on vq->done */
	struct list_head free;		/* on vq->free_reqs */
	struct list_head slow;		/* on dev->slow.queue: flush, discard, write zeroes, */
					/* and buffered reads/writes that would block */
	struct vblk_backend *be;	/* backend of this request */
	struct file *file;		/* be->file */
	long ret;
	u64 len;			/* bytes of data to transfer */
	u64 done_bytes;			/* of them, done without blocking (worker) */
	u64 sector;
	s64 wgen;			/* FLUSH: write generation it covers */
	u8 __user *status;
	u32 type;
	u32 used_len;			/* bytes written to the guest */
	u64 dirty_len;			/* bytes the guest may find written */
	u32 flags;
	u16 head;
	u16 nr_segs;			/* discard/write zeroes */
	/* descriptor walk result */
	bool bad;			/* translation/layout error */
	bool last_poison;		/* last writable piece untranslatable */
	unsigned int n_iov;
	unsigned int n_out;
	unsigned int iov_cap;
	u64 out_len;
	u64 in_len;
	struct vblk_dwz_seg segs[VBLK_MAX_DWZ_SEGS];
	struct iovec iov[];
};

/* Kick eventfd poller. */
struct vblk_poll {
	poll_table table;
	wait_queue_head_t *wqh;
	wait_queue_entry_t wait;
	struct vblk_vq *vq;
};

/*
 * Per-queue counters (stats.c), shown in debugfs. Only the queue's worker
 * writes them, under vq->mutex (WRITE_ONCE: debugfs reads them unlocked).
 */
struct vblk_stats {
	u64 requests;		/* answered, whatever the status */
	u64 reads;
	u64 read_bytes;		/* of successful reads */
	u64 writes;
	u64 write_bytes;	/* of successful writes */
	u64 flushes;		/* answered, coalesced ones included */
	u64 flushes_skipped;	/* answered OK without an fsync (flush.c) */
	u64 discards;
	u64 write_zeroes;
	u64 others;		/* GET_ID, unknown types, unreadable headers */
	u64 errors;		/* VIRTIO_BLK_S_IOERR */
	u64 unsupported;	/* VIRTIO_BLK_S_UNSUPP */
	u64 dirty_pages;	/* log bits set that were clear (log.c) */
	u64 found_by_poll;	/* taken off the avail ring: the busy-poll saw them, */
	u64 found_by_kick;	/* or a kick (restart, resume) started the pass */
};

/* vq->work bits */
#define VBLK_WORK_KICK	0

struct vblk_dev;

struct vblk_vq {
	struct vblk_dev *dev;
	unsigned int index;
	struct mutex mutex;

	/* ring configuration (ioctls) */
	unsigned int num;
	struct vblk_desc __user *desc;
	struct vblk_avail __user *avail;
	struct vblk_used __user *used;
	u64 log_addr;
	bool log_used;
	unsigned int busyloop_us;	/* READ_ONCE: the worker reads it unlocked */

	/* ring state (worker) */
	u16 last_avail_idx;
	u16 avail_idx;
	u16 used_idx;
	u16 used_flags;
	u16 signalled_used;
	bool signalled_used_valid;
	bool need_init;
	bool stopped;			/* GET_VRING_BASE: the VMM stopped the ring */
	bool paused;			/* SET_BACKEND swapping the backend */
	bool broken;
	bool starved;
	bool poll_found;		/* the busy-poll found the entries being taken */
	bool logged;
	unsigned int added;

	/* copies of device state, updated under vq->mutex */
	u64 acked;
	struct vblk_mem *mem;
	struct vblk_backend *be;
	u64 log_base;
	struct eventfd_ctx *log_ctx;
	u8 serial[VIRTIO_BLK_ID_BYTES];

	/* eventfds */
	struct file *kick;
	struct eventfd_ctx *call;
	struct eventfd_ctx *err;
	struct vblk_poll poll;

	/* worker and completions */
	struct task_struct *worker;
	unsigned long work;
	struct llist_head done;
	unsigned int inflight;
	wait_queue_head_t drain_wq;

	/* request pool */
	void *pool;
	size_t req_size;
	unsigned int pool_size;
	struct list_head free_reqs;

	struct vblk_stats stats;
};

/*
 * A device's slow-op threads (work.c): FLUSH, DISCARD and WRITE_ZEROES may
 * block for long, and so may buffered reads and writes that could not be
 * done without blocking (io.c), so the queue workers hand them to these
 * kthreads, started
 * at VHOST_SET_OWNER in the owner's cgroups with its mm, at most
 * @nthreads (slow_ops_per_device) running at a time, the rest waiting on
 * @queue in the order they came. @lock protects @queue and the counters,
 * which debugfs reads unlocked (READ_ONCE).
 */
struct vblk_slow {
	spinlock_t lock;
	struct list_head queue;		/* not started yet, oldest first */
	wait_queue_head_t wait;		/* idle threads, woken one at a time */
	unsigned int nthreads;
	unsigned int queued;		/* on @queue */
	unsigned int running;		/* taken by a thread, not handed back */
	unsigned int running_max;	/* highest @running since SET_OWNER */
	u64 done;			/* handed back since SET_OWNER */
	u64 rw;				/* of those queued, reads and writes */
	struct task_struct *threads[VBLK_MAX_SLOW_OPS];
};

struct vblk_dev {
	struct mutex mutex;
	struct mm_struct *mm;
	pid_t owner_pid;		/* tgid of the (last) owner, for messages */
	u32 id;				/* unique while loaded: debugfs, fdinfo, traces */
	struct dentry *debugfs;		/* <owner_pid>-<id>/, while owned */
	bool counted;			/* holds one of max_devices */
	u8 serial[VIRTIO_BLK_ID_BYTES];	/* VHOST_BLK_SET_SERIAL, kept across resets */
	u64 acked;
	struct vblk_mem *mem;
	struct vblk_backend *be;
	u64 log_base;
	struct eventfd_ctx *log_ctx;
	unsigned int nvqs;
	unsigned int seg_max;
	unsigned int pool_max;
	struct vblk_slow slow;
	struct vblk_vq vqs[];
};

/*
 * Messages about a device name its owner: "vhost_blk: pid 1234: ...".
 * Warnings are rate limited: a guest can trigger them.
 */
#define vblk_warn(dev, fmt, ...)					\
	pr_warn_ratelimited("pid %d: " fmt, (dev)->owner_pid, ##__VA_ARGS__)
#define vblk_info(dev, fmt, ...)					\
	pr_info_ratelimited("pid %d: " fmt, (dev)->owner_pid, ##__VA_ARGS__)
#define vblk_dbg(dev, fmt, ...)						\
	pr_debug("pid %d: " fmt, (dev)->owner_pid, ##__VA_ARGS__)

/* What a new or reset queue busy-polls for (module parameter, bounded). */
static inline unsigned int vblk_default_busyloop_us(void)
{
	return min_t(unsigned int, READ_ONCE(vblk_busyloop_us),
		     VBLK_MAX_BUSYLOOP_US);
}

static inline bool vblk_has(u64 features, unsigned int bit)
{
	return features & (1ULL << bit);
}

static inline bool vblk_logging(struct vblk_vq *vq)
{
	return vblk_has(vq->acked, VHOST_F_LOG_ALL) && vq->log_base;
}

/* dev.c */
long vblk_dev_ioctl(struct vblk_dev *dev, unsigned int cmd, void __user *argp);
struct vblk_dev *vblk_dev_alloc(void);
void vblk_dev_release(struct vblk_dev *dev);

/* vq_ioctl.c */
long vblk_vq_ioctl(struct vblk_dev *dev, unsigned int cmd, void __user *argp);
void vblk_vq_cleanup(struct vblk_vq *vq);
void vblk_vq_drain(struct vblk_vq *vq);

/* mem.c */
struct vblk_mem *vblk_mem_from_user(void __user *argp, long *err);
const struct vblk_region *vblk_mem_find(const struct vblk_mem *mem, u64 gpa);
int vblk_copy_from_guest(struct vblk_vq *vq, void *dst, u64 gpa, size_t len);

/* log.c */
int vblk_log_gpa(struct vblk_vq *vq, u64 gpa, u64 len);
int vblk_log_hva(struct vblk_vq *vq, unsigned long hva, u64 len);
int vblk_log_used(struct vblk_vq *vq, u64 offset, u64 len);
bool vblk_log_range_ok(u64 base, u64 gpa, u64 len);
bool vblk_log_covers(struct vblk_dev *dev, const struct vblk_mem *mem, u64 base);

/* vring.c */
int vblk_vq_init_access(struct vblk_vq *vq);
int vblk_vq_next_head(struct vblk_vq *vq, u16 *head);
int vblk_vq_walk(struct vblk_vq *vq, u16 head, struct vblk_req *req);
int vblk_vq_add_used(struct vblk_vq *vq, u16 head, u32 len);
void vblk_vq_publish(struct vblk_vq *vq);
int vblk_vq_disable_notify(struct vblk_vq *vq);
int vblk_vq_enable_notify(struct vblk_vq *vq, bool *more);
bool vblk_vq_avail_moved(struct vblk_vq *vq);
void vblk_vq_set_broken(struct vblk_vq *vq, const char *why);

/* req.c */
int vblk_pool_alloc(struct vblk_vq *vq, unsigned int num);
void vblk_pool_free(struct vblk_vq *vq);
struct vblk_req *vblk_req_get(struct vblk_vq *vq);
void vblk_req_handle(struct vblk_vq *vq, struct vblk_req *req);
void vblk_req_finish(struct vblk_vq *vq, struct vblk_req *req, u8 status);
void vblk_req_complete(struct vblk_vq *vq, struct vblk_req *req);

/* backend.c */
struct vblk_backend *vblk_backend_open(int fd, u32 flags, long *err);
void vblk_backend_put(struct vblk_backend *be);

/* io.c */
void vblk_io_start_rw(struct vblk_vq *vq, struct vblk_req *req,
		      struct iov_iter *iter, bool write);
ssize_t vblk_io_rw_blocking(struct vblk_req *req);
void vblk_io_end(struct vblk_req *req);
void vblk_req_queue_done(struct vblk_req *req);

/* flush.c */
void vblk_flush_wrote(struct vblk_req *req);
bool vblk_flush_needed(struct vblk_req *req);
int vblk_flush_run(struct vblk_req *req);

/* work.c */
void vblk_slow_init(struct vblk_dev *dev);
int vblk_slow_start(struct vblk_dev *dev);
void vblk_slow_stop(struct vblk_dev *dev);
void vblk_slow_queue(struct vblk_dev *dev, struct vblk_req *req);

/* stats.c */
void vblk_stats_count(struct vblk_vq *vq, struct vblk_req *req, u8 status);
void vblk_stats_flush_skipped(struct vblk_vq *vq);
void vblk_stats_found(struct vblk_vq *vq);
void vblk_stats_dirty(struct vblk_vq *vq, u64 pages);
void vblk_stats_dev_add(struct vblk_dev *dev);
void vblk_stats_dev_remove(struct vblk_dev *dev);
void vblk_stats_init(void);
void vblk_stats_exit(void);

/* quota.c */
int vblk_quota_get_device(void);
void vblk_quota_put_device(void);
int vblk_quota_get_worker(void);
void vblk_quota_put_worker(void);

/* worker.c */
int vblk_thread_start(struct vblk_dev *dev, struct task_struct **slot,
		      int (*fn)(void *arg), void *arg, const char *name);
int vblk_worker_start(struct vblk_vq *vq);
void vblk_worker_stop(struct vblk_vq *vq);
void vblk_worker_kick(struct vblk_vq *vq);
int vblk_poll_start(struct vblk_vq *vq, struct file *file);
void vblk_poll_stop(struct vblk_vq *vq);

#endif /* VHOST_BLK_VBLK_H */
