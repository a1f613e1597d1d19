/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-blk: tracepoints (events/vhost_blk/ in tracefs).
 *
 *   vhost_blk_submit    a request whose header was read, before it is served
 *   vhost_blk_complete  a request answered (status byte and used entry)
 *
 * Both name the device by its owner's pid and id (as debugfs and fdinfo do),
 * the queue and the descriptor head, which pairs a submit with its complete.
 * Built out of tree: define_trace.h includes this file again through
 * TRACE_INCLUDE_PATH, relative to the -I$(src) that Kbuild gives trace.o.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vhost_blk

#if !defined(VHOST_BLK_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VHOST_BLK_TRACE_H

#include <linux/tracepoint.h>

#include "vblk.h"

#define vblk_trace_type(t)						\
	__print_symbolic(t,						\
			 { VIRTIO_BLK_T_IN, "in" },			\
			 { VIRTIO_BLK_T_OUT, "out" },			\
			 { VIRTIO_BLK_T_FLUSH, "flush" },		\
			 { VIRTIO_BLK_T_GET_ID, "get_id" },		\
			 { VIRTIO_BLK_T_DISCARD, "discard" },		\
			 { VIRTIO_BLK_T_WRITE_ZEROES, "write_zeroes" })

TRACE_EVENT(vhost_blk_submit,
	TP_PROTO(const struct vblk_vq *vq, const struct vblk_req *req),
	TP_ARGS(vq, req),
	TP_STRUCT__entry(
		__field(pid_t, owner)
		__field(u32, dev)
		__field(u32, queue)
		__field(u32, head)
		__field(u32, type)
		__field(u64, sector)
		__field(u64, out_len)
		__field(u64, in_len)
	),
	TP_fast_assign(
		__entry->owner = vq->dev->owner_pid;
		__entry->dev = vq->dev->id;
		__entry->queue = vq->index;
		__entry->head = req->head;
		__entry->type = req->type;
		__entry->sector = req->sector;
		__entry->out_len = req->out_len;
		__entry->in_len = req->in_len;
	),
	TP_printk("owner=%d dev=%u queue=%u head=%u type=%s sector=%llu out_len=%llu in_len=%llu",
		  __entry->owner, __entry->dev, __entry->queue, __entry->head,
		  vblk_trace_type(__entry->type), __entry->sector,
		  __entry->out_len, __entry->in_len)
);

TRACE_EVENT(vhost_blk_complete,
	TP_PROTO(const struct vblk_vq *vq, const struct vblk_req *req,
		 u8 status),
	TP_ARGS(vq, req, status),
	TP_STRUCT__entry(
		__field(pid_t, owner)
		__field(u32, dev)
		__field(u32, queue)
		__field(u32, head)
		__field(u32, type)
		__field(u8, status)
		__field(long, ret)
	),
	TP_fast_assign(
		__entry->owner = vq->dev->owner_pid;
		__entry->dev = vq->dev->id;
		__entry->queue = vq->index;
		__entry->head = req->head;
		__entry->type = req->type;
		__entry->status = status;
		__entry->ret = req->ret;
	),
	TP_printk("owner=%d dev=%u queue=%u head=%u type=%s status=%s ret=%ld",
		  __entry->owner, __entry->dev, __entry->queue, __entry->head,
		  vblk_trace_type(__entry->type),
		  __print_symbolic(__entry->status,
				   { VIRTIO_BLK_S_OK, "ok" },
				   { VIRTIO_BLK_S_IOERR, "ioerr" },
				   { VIRTIO_BLK_S_UNSUPP, "unsupp" }),
		  __entry->ret)
);

#endif /* VHOST_BLK_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
