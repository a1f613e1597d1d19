// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: one worker thread per virtqueue and the kick eventfd poller.
 *
 * The worker is a kthread that adopts the owner's mm (guest memory is the
 * owner's memory) and joins the owner's cgroups (so the VM's io.max and cpu
 * limits apply). Each pass it reaps completed requests and publishes them
 * (when there are new ones to take), takes new ones off the avail ring in a
 * batch (under a block plug), then publishes the used ring and signals the
 * guest once more. With a busy-loop timeout set
 * (VHOST_SET_VRING_BUSYLOOP_TIMEOUT, or the busyloop_us parameter) an idle
 * worker first spins that long, with the guest's kicks off, reading
 * avail->idx itself and watching for completions: no sleep and wake-up
 * between a completion and the guest's next request, and no exit for the
 * guest to kick (vhost-net's busyloop, for the same reason: latency at low
 * queue depth, paid in CPU).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/sched/clock.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/cgroup.h>
#include <linux/blkdev.h>
#include <linux/poll.h>
#include <linux/file.h>
#include <linux/cred.h>

#include "vblk.h"

void vblk_worker_kick(struct vblk_vq *vq)
{
	set_bit(VBLK_WORK_KICK, &vq->work);
	if (vq->worker)
		wake_up_process(vq->worker);
}

/* Completed requests: status bytes and used entries. Returns whether any. */
static bool vblk_worker_reap(struct vblk_vq *vq)
{
	struct llist_node *list = llist_del_all(&vq->done);
	struct vblk_req *req, *tmp;

	if (!list)
		return false;
	list = llist_reverse_order(list);
	llist_for_each_entry_safe(req, tmp, list, node)
		vblk_req_complete(vq, req);

	/* Requests came back: resume a ring we left for lack of them. */
	if (vq->starved) {
		vq->starved = false;
		set_bit(VBLK_WORK_KICK, &vq->work);
	}
	return true;
}

static bool vblk_vq_ready(struct vblk_vq *vq)
{
	return vq->num && vq->desc && vq->avail && vq->used && vq->pool &&
	       vq->be && vq->kick && !vq->stopped && !vq->paused && !vq->broken;
}

/*
 * Take new requests off the avail ring, at most VBLK_WEIGHT per pass.
 * Reads and writes are submitted with the credentials of whoever opened
 * the backend (its f_cred), not the kthread's: the permission hooks and
 * filesystem decisions (e.g. clearing set-user-ID on write) see the VMM.
 */
static void vblk_worker_handle_kick(struct vblk_vq *vq)
{
	const struct cred *old_cred;
	unsigned int done = 0;
	struct blk_plug plug;
	struct vblk_req *req;
	bool more;
	u16 head;
	int ret;

	if (!vblk_vq_ready(vq))
		return;
	if (vq->need_init && vblk_vq_init_access(vq)) {
		vblk_vq_set_broken(vq, "cannot read used ring");
		return;
	}
	if (vblk_vq_disable_notify(vq)) {
		vblk_vq_set_broken(vq, "cannot write used flags");
		return;
	}

	old_cred = override_creds(vq->be->file->f_cred);
	blk_start_plug(&plug);
	for (;;) {
		if (list_empty(&vq->free_reqs)) {
			vq->starved = true;	/* kicked again by reap */
			break;
		}
		if (done++ >= VBLK_WEIGHT) {
			set_bit(VBLK_WORK_KICK, &vq->work);	/* yield */
			break;
		}
		ret = vblk_vq_next_head(vq, &head);
		if (ret == -EAGAIN) {
			vq->poll_found = false;
			/* the busy-poll after this pass turns kicks on when it ends */
			if (READ_ONCE(vq->busyloop_us))
				break;
			if (vblk_vq_enable_notify(vq, &more)) {
				vblk_vq_set_broken(vq, "cannot enable notify");
				break;
			}
			if (!more)
				break;
			vblk_vq_disable_notify(vq);
			continue;
		}
		if (ret)
			break;
		vblk_stats_found(vq);
		req = vblk_req_get(vq);
		if (vblk_vq_walk(vq, head, req)) {
			/* broken: the request cannot be answered */
			list_add(&req->free, &vq->free_reqs);
			break;
		}
		vblk_req_handle(vq, req);
		if (vq->broken)
			break;
		/* up to VBLK_WEIGHT requests of up to seg_max descriptors each */
		cond_resched();
	}
	blk_finish_plug(&plug);
	revert_creds(old_cred);
}

static bool vblk_worker_has_work(struct vblk_vq *vq)
{
	return test_bit(VBLK_WORK_KICK, &vq->work) || !llist_empty(&vq->done);
}

/* Can the busy-poll watch this queue's avail ring? vq->mutex held. */
static bool vblk_worker_can_poll(struct vblk_vq *vq)
{
	return vblk_vq_ready(vq) && !vq->need_init && !vq->starved;
}

/*
 * After the last pass, before the worker sleeps, once per idle period. With
 * a busy-loop timeout, spin that long for new avail entries, a kick or a
 * completion, as vhost-net does: kicks are off and the guest's additions are
 * seen in avail->idx. The spin does not hold vq->mutex (no ioctl waits for
 * the window); what an ioctl changes meanwhile is looked at again under it
 * at the end, and a ring it restarts gets a kick. The spin ends early when
 * someone else needs the CPU or the thread must stop. Kicks and completions
 * set their bit or list entry before they wake us, so nothing is missed
 * while we spin as TASK_RUNNING.
 *
 * When it finds work, the next pass takes it with kicks still off.
 * Otherwise kicks are on when it returns: turned on, then avail->idx read
 * once more, or an entry the guest added before it saw kicks on would wait
 * for a kick that never comes. A queue that cannot be polled (not ready,
 * not set up yet, no free request) is left as it is: its next pass comes
 * from a restart or a completion.
 */
static void vblk_worker_busypoll(struct vblk_vq *vq)
{
	unsigned int us = READ_ONCE(vq->busyloop_us);
	bool ring = false, more, found = false;
	u64 end;

	if (us) {
		mutex_lock(&vq->mutex);
		ring = vblk_worker_can_poll(vq);
		if (ring && vblk_vq_disable_notify(vq)) {
			vblk_vq_set_broken(vq, "cannot write used flags");
			ring = false;
		}
		mutex_unlock(&vq->mutex);

		preempt_disable();
		end = local_clock() + (u64)us * NSEC_PER_USEC;
		while (!need_resched() && !kthread_should_stop()) {
			if (vblk_worker_has_work(vq))
				break;
			if (ring && vblk_vq_avail_moved(vq)) {
				found = true;
				break;
			}
			if (local_clock() >= end)
				break;
			cpu_relax();
		}
		preempt_enable();
	}

	mutex_lock(&vq->mutex);
	if (!found && !vblk_worker_has_work(vq) && vblk_worker_can_poll(vq) &&
	    (vq->used_flags & VRING_USED_F_NO_NOTIFY)) {
		if (vblk_vq_enable_notify(vq, &more))
			vblk_vq_set_broken(vq, "cannot enable notify");
		else
			found = more;
	}
	if (found) {
		vq->poll_found = true;
		set_bit(VBLK_WORK_KICK, &vq->work);
	}
	mutex_unlock(&vq->mutex);
}

/*
 * One pass. Completions found at its start are published (used index,
 * signal) before new requests are taken: submitting up to VBLK_WEIGHT of
 * them can take long, and the guest should not wait for that to see
 * requests that were already done.
 */
static void vblk_worker_pass(struct vblk_vq *vq)
{
	mutex_lock(&vq->mutex);
	if (vblk_worker_reap(vq) && test_bit(VBLK_WORK_KICK, &vq->work))
		vblk_vq_publish(vq);
	if (test_and_clear_bit(VBLK_WORK_KICK, &vq->work))
		vblk_worker_handle_kick(vq);
	/* Sync completions of this pass are in the used ring too. */
	vblk_worker_reap(vq);
	vblk_vq_publish(vq);
	mutex_unlock(&vq->mutex);
}

/*
 * Handed to a new thread by vblk_thread_start(), which waits for @attached.
 * Lives on the starter's stack: gone once @attached is completed.
 */
struct vblk_thread_boot {
	int (*fn)(void *arg);
	void *arg;
	struct task_struct *owner;
	struct completion attached;
	int ret;
};

static void vblk_thread_wait_stop(void)
{
	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop())
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
}

/*
 * Every thread of a device (queue workers, slow-op threads) starts here and
 * joins the owner's cgroups before it does anything: the VM's io.max, cpu
 * and memory limits apply to all the work done for it.
 *
 * The move is done from here, as the new thread: it is then done with the
 * kthread's own credentials. Done from the owner's thread instead, cpuset's
 * can_attach asks whether the owner may change this root kthread's
 * scheduling, which an unprivileged QEMU (libvirt runs it as libvirt-qemu,
 * without CAP_SYS_NICE) may not: -EPERM.
 */
static int vblk_thread_fn(void *data)
{
	struct vblk_thread_boot *boot = data;
	int (*fn)(void *arg) = boot->fn;
	void *arg = boot->arg;
	int ret;

	ret = cgroup_attach_task_all(boot->owner, current);
	boot->ret = ret;
	complete(&boot->attached);	/* @boot is gone after this */
	if (ret) {
		vblk_thread_wait_stop();
		return ret;
	}
	return fn(arg);
}

/*
 * Start a kthread called @name running @fn(@arg) in the cgroups of the
 * calling process (the owner, in its ioctl).
 * *@slot is set before the thread runs, so wake-ups issued meanwhile reach
 * it. On failure *@slot is NULL again and a negative errno returned.
 */
int vblk_thread_start(struct vblk_dev *dev, struct task_struct **slot,
		      int (*fn)(void *arg), void *arg, const char *name)
{
	struct vblk_thread_boot boot = {
		.fn = fn,
		.arg = arg,
		/* the VMM's main thread: its cgroups are the VM's (libvirt: emulator) */
		.owner = current->group_leader,
	};
	struct task_struct *t;

	init_completion(&boot.attached);
	t = kthread_create(vblk_thread_fn, &boot, "%s", name);
	if (IS_ERR(t))
		return PTR_ERR(t);
	WRITE_ONCE(*slot, t);
	wake_up_process(t);
	wait_for_completion(&boot.attached);
	if (boot.ret) {
		vblk_warn(dev, "cannot join the cgroups of %s[%d]: %d\n",
			  boot.owner->comm, boot.owner->pid, boot.ret);
		WRITE_ONCE(*slot, NULL);
		kthread_stop(t);
		return boot.ret;
	}
	return 0;
}

static int vblk_worker_fn(void *data)
{
	struct vblk_vq *vq = data;
	struct mm_struct *mm = vq->dev->mm;
	bool polled = false;

	kthread_use_mm(mm);
	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop()) {
			__set_current_state(TASK_RUNNING);
			break;
		}
		if (!vblk_worker_has_work(vq)) {
			if (!polled) {
				/* once per idle period, then sleep */
				__set_current_state(TASK_RUNNING);
				polled = true;
				vblk_worker_busypoll(vq);
				continue;
			}
			schedule();
			polled = false;
			continue;
		}
		__set_current_state(TASK_RUNNING);
		vblk_worker_pass(vq);
		polled = false;
		cond_resched();
	}
	/* Nothing is in flight here: release drained the queue first. */
	kthread_unuse_mm(mm);
	return 0;
}

/* Called from the owner's ioctl, dev->mutex held. */
int vblk_worker_start(struct vblk_vq *vq)
{
	char name[32];
	int ret;

	ret = vblk_quota_get_worker();
	if (ret) {
		vblk_warn(vq->dev, "queue %u: max_workers (%u) queue workers run already\n",
			  vq->index, READ_ONCE(vblk_max_workers));
		return ret;
	}
	snprintf(name, sizeof(name), "vhost-blk-%d.%u", current->tgid, vq->index);
	ret = vblk_thread_start(vq->dev, &vq->worker, vblk_worker_fn, vq, name);
	if (ret)
		vblk_quota_put_worker();
	return ret;
}

void vblk_worker_stop(struct vblk_vq *vq)
{
	struct task_struct *worker = vq->worker;

	if (!worker)
		return;
	WRITE_ONCE(vq->worker, NULL);
	kthread_stop(worker);
	vblk_quota_put_worker();
}

static int vblk_poll_wake(wait_queue_entry_t *wait, unsigned int mode,
			  int sync, void *key)
{
	struct vblk_poll *p = container_of(wait, struct vblk_poll, wait);

	if (key && !(key_to_poll(key) & EPOLLIN))
		return 0;
	vblk_worker_kick(p->vq);
	return 0;
}

static void vblk_poll_queue(struct file *file, wait_queue_head_t *wqh,
			    poll_table *pt)
{
	struct vblk_poll *p = container_of(pt, struct vblk_poll, table);

	if (p->wqh)
		return;		/* one wait queue is all an eventfd has */
	p->wqh = wqh;
	add_wait_queue(wqh, &p->wait);
}

/* vq->mutex held. */
int vblk_poll_start(struct vblk_vq *vq, struct file *file)
{
	struct vblk_poll *p = &vq->poll;
	__poll_t mask;

	init_waitqueue_func_entry(&p->wait, vblk_poll_wake);
	init_poll_funcptr(&p->table, vblk_poll_queue);
	p->wqh = NULL;
	mask = vfs_poll(file, &p->table);
	if (mask & EPOLLERR) {
		vblk_poll_stop(vq);
		return -EINVAL;
	}
	/* Pick up kicks the guest sent before the fd was attached. */
	vblk_worker_kick(vq);
	return 0;
}

/* vq->mutex held. */
void vblk_poll_stop(struct vblk_vq *vq)
{
	struct vblk_poll *p = &vq->poll;

	if (p->wqh) {
		remove_wait_queue(p->wqh, &p->wait);
		p->wqh = NULL;
	}
}
