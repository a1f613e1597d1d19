// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vblk_bench: closed-loop 4k random I/O through /dev/vhost-blk, the C twin of the exerciser's
 * Python bench driver (tools/vhostblk/bench.py VhostRun), so that the module's own latency at
 * queue depth 1 is not hidden behind the driver's.
 *
 * It plays the VMM exactly as the Python driver does: guest RAM is one memfd mapping (guest
 * physical address 0 = its first byte), then VHOST_SET_OWNER, VHOST_BLK_SET_BACKEND,
 * VHOST_GET/SET_FEATURES (VERSION_1, EVENT_IDX when offered), VHOST_SET_MEM_TABLE and per queue
 * VHOST_SET_VRING_NUM/BASE/ADDR/BUSYLOOP_TIMEOUT and CALL/ERR/KICK eventfds. Each queue holds
 * --qd requests (descriptors 3i..3i+2: header, 4k data, status); a completed request is
 * resubmitted at a new random block until --runtime has passed, then the queues drain.
 *
 * Completions are waited for on the call eventfds. With --busyloop-us > 0 (the module's worker
 * polls the avail ring for that long once idle) this driver, like a polling guest driver, polls
 * the used rings with calls off for up to the same window before it sleeps on the eventfds.
 *
 * Output: one JSON line (IOPS, mean and 99th percentile completion latency). Any failing call,
 * a request whose status is not OK, a ring error or a missing completion: a message naming it
 * on stderr, exit 1. Bad arguments: exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/vhost_blk.h>

#define BS 4096u
#define MAX_QD 300		/* 3 descriptors per request in a ring of at most 1024 */
#define MAX_QUEUES 16
#define STATUS_UNSET 0xee	/* not a valid status: catches "never written" */

struct opts {
	const char *device;
	const char *file;
	bool write;
	bool buffered;
	unsigned int qd;
	unsigned int queues;
	unsigned int busyloop_us;
	double runtime;
	double timeout;
	uint64_t seed;
};

struct slot {
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint64_t submit_ns;
};

struct queue {
	struct vring vr;
	bool event_idx;
	uint16_t avail_idx;
	uint16_t last_used;
	int kick, call, err;
	struct slot slots[MAX_QD];
};

struct lat_log {
	uint64_t *ns;
	size_t n, cap;
};

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("vblk_bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vblk_bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: vblk_bench --file PATH --rw randread|randwrite --qd N --runtime SECONDS\n"
	      "       [--device /dev/vhost-blk] [--queues N] [--buffered] [--busyloop-us N]\n"
	      "       [--timeout SECONDS] [--seed N]\n", stderr);
	exit(2);
}

static void xioctl(int fd, unsigned long req, void *arg, const char *name)
{
	if (ioctl(fd, req, arg) < 0)
		die("ioctl %s: %s", name, strerror(errno));
}

#define IOCTL(fd, req, arg) xioctl(fd, req, arg, #req)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd_next(uint64_t *s)	/* xorshift64* */
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static unsigned long parse_uint(const char *opt, const char *text, unsigned long lo,
				unsigned long hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || v < lo || v > hi)
		usage_error("%s: '%s' is not an integer in %lu..%lu", opt, text, lo, hi);
	return v;
}

static double parse_seconds(const char *opt, const char *text)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || *end || !(v > 0) || v > 86400)
		usage_error("%s: '%s' is not a number of seconds in (0, 86400]", opt, text);
	return v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "file", required_argument, NULL, 'f' },
		{ "rw", required_argument, NULL, 'w' },
		{ "qd", required_argument, NULL, 'q' },
		{ "queues", required_argument, NULL, 'Q' },
		{ "runtime", required_argument, NULL, 'r' },
		{ "buffered", no_argument, NULL, 'b' },
		{ "busyloop-us", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rw = NULL;
	bool have_qd = false, have_runtime = false;
	int c;

	*o = (struct opts){ .device = "/dev/" VHOST_BLK_DEVICE_NAME, .queues = 1,
			    .timeout = 30, .seed = 1 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->device = optarg; break;
		case 'f': o->file = optarg; break;
		case 'w': rw = optarg; break;
		case 'q': o->qd = parse_uint("--qd", optarg, 1, MAX_QD); have_qd = true; break;
		case 'Q': o->queues = parse_uint("--queues", optarg, 1, MAX_QUEUES); break;
		case 'r': o->runtime = parse_seconds("--runtime", optarg); have_runtime = true; break;
		case 'b': o->buffered = true; break;
		case 'p': o->busyloop_us = parse_uint("--busyloop-us", optarg, 0, 1000000); break;
		case 't': o->timeout = parse_seconds("--timeout", optarg); break;
		case 's': o->seed = parse_uint("--seed", optarg, 0, ULONG_MAX); break;
		default:
			usage_error("unknown option or missing value: '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->file)
		usage_error("--file is required");
	if (!rw)
		usage_error("--rw is required");
	if (strcmp(rw, "randread") && strcmp(rw, "randwrite"))
		usage_error("--rw: '%s' is neither randread nor randwrite", rw);
	o->write = !strcmp(rw, "randwrite");
	if (!have_qd)
		usage_error("--qd is required");
	if (!have_runtime)
		usage_error("--runtime is required");
	/* xorshift must not start at 0 */
	o->seed = o->seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
}

static unsigned int ring_num(unsigned int qd)
{
	unsigned int n = 8;

	while (n < 3 * qd)
		n *= 2;
	return n;
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* guest RAM: [page 0 unused] then per queue: ring, data pages, headers, status bytes */
static size_t queue_bytes(unsigned int num, unsigned int qd)
{
	return align_up(vring_size(num, 4096), 4096) + (size_t)qd * BS +
	       align_up((size_t)qd * (sizeof(struct virtio_blk_outhdr) + 1), 4096);
}

static void set_vring_file(int dev, unsigned long req, const char *name, unsigned int q, int fd)
{
	struct vhost_vring_file f = { .index = q, .fd = fd };

	xioctl(dev, req, &f, name);
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		die("eventfd: %s", strerror(errno));
	return fd;
}

static bool eventfd_take(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		return true;
	if (errno != EAGAIN)
		die("read of an eventfd: %s", strerror(errno));
	return false;
}

static void lat_add(struct lat_log *l, uint64_t ns)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1 << 16;
		l->ns = realloc(l->ns, l->cap * sizeof(*l->ns));
		if (!l->ns)
			die("out of memory for %zu latencies", l->cap);
	}
	l->ns[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct bench {
	struct opts o;
	int dev;
	uint8_t *ram;
	size_t ram_size;
	bool event_idx;
	uint64_t nblocks;
	uint64_t rnd;
	struct queue q[MAX_QUEUES];
	struct lat_log lat;
};

static uint64_t gpa(const struct bench *b, const void *p)
{
	return (uint64_t)((const uint8_t *)p - b->ram);
}

static void submit(struct bench *b, struct queue *vq, unsigned int i)
{
	struct slot *s = &vq->slots[i];

	s->hdr->type = b->o.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	s->hdr->ioprio = 0;
	s->hdr->sector = (rnd_next(&b->rnd) % b->nblocks) * (BS / 512);
	*s->status = STATUS_UNSET;
	vq->vr.avail->ring[vq->avail_idx % vq->vr.num] = (__virtio16)(3 * i);
	s->submit_ns = now_ns();
	vq->avail_idx++;
}

/* the avail_event field after the used ring (vring_avail_event() without its type pun) */
static void *avail_event(struct queue *vq)
{
	return &vq->vr.used->ring[vq->vr.num];
}

/* publish avail->idx and kick unless the device said it does not need one */
static void publish(struct queue *vq, uint16_t old)
{
	bool kick;

	if (vq->avail_idx == old)
		return;
	__atomic_store_n(&vq->vr.avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->event_idx)
		kick = vring_need_event(*(volatile __virtio16 *)avail_event(vq), vq->avail_idx, old);
	else
		kick = !(*(volatile __virtio16 *)&vq->vr.used->flags & VRING_USED_F_NO_NOTIFY);
	if (kick && eventfd_write(vq->kick, 1) < 0)
		die("write of the kick eventfd: %s", strerror(errno));
}

/* the device signals the next completion (false: it need not, the used ring is polled) */
static void want_calls(struct queue *vq, bool on)
{
	if (vq->event_idx)
		*(volatile __virtio16 *)&vring_used_event(&vq->vr) =
			(__virtio16)(on ? vq->last_used : (uint16_t)(vq->last_used - 1));
	else
		*(volatile __virtio16 *)&vq->vr.avail->flags =
			(__virtio16)(on ? 0 : VRING_AVAIL_F_NO_INTERRUPT);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static int open_backing(const struct opts *o, uint64_t *nblocks)
{
	int fd = open(o->file, O_RDWR | O_CLOEXEC | (o->buffered ? 0 : O_DIRECT));
	off_t size;

	if (fd < 0)
		die("open %s%s: %s", o->file, o->buffered ? "" : " with O_DIRECT", strerror(errno));
	size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		die("lseek %s: %s", o->file, strerror(errno));
	*nblocks = (uint64_t)size / BS;
	if (!*nblocks)
		die("%s: smaller than one %u-byte block", o->file, BS);
	return fd;
}

static void map_ram(struct bench *b, unsigned int num)
{
	int fd;

	b->ram_size = 4096 + b->o.queues * queue_bytes(num, b->o.qd);
	fd = memfd_create("vblk-bench-guest-ram", MFD_CLOEXEC);
	if (fd < 0)
		die("memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)b->ram_size) < 0)
		die("ftruncate of the guest RAM memfd: %s", strerror(errno));
	b->ram = mmap(NULL, b->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b->ram == MAP_FAILED)
		die("mmap of %zu bytes of guest RAM: %s", b->ram_size, strerror(errno));
	close(fd);
}

static void set_mem_table(struct bench *b)
{
	struct vhost_memory *mem = calloc(1, sizeof(*mem) + sizeof(mem->regions[0]));

	if (!mem)
		die("out of memory for the memory table");
	mem->nregions = 1;
	mem->regions[0] = (struct vhost_memory_region){
		.guest_phys_addr = 0,
		.memory_size = b->ram_size,
		.userspace_addr = (uintptr_t)b->ram,
	};
	IOCTL(b->dev, VHOST_SET_MEM_TABLE, mem);
	free(mem);
}

/* the ring of queue q at ram + *off, its descriptors 3i..3i+2 = header, data, status */
static void setup_queue(struct bench *b, unsigned int q, unsigned int num, size_t *off)
{
	struct queue *vq = &b->q[q];
	unsigned int qd = b->o.qd, i;
	uint8_t *data, *meta;
	struct vhost_vring_state st = { .index = q };
	struct vhost_vring_addr addr = { .index = q };

	vring_init(&vq->vr, num, b->ram + *off, 4096);
	vq->event_idx = b->event_idx;
	*off += align_up(vring_size(num, 4096), 4096);
	data = b->ram + *off;
	*off += (size_t)qd * BS;
	meta = b->ram + *off;
	*off += align_up((size_t)qd * (sizeof(struct virtio_blk_outhdr) + 1), 4096);
	for (i = 0; i < qd; i++) {
		struct slot *s = &vq->slots[i];
		uint8_t *buf = data + (size_t)i * BS;
		struct vring_desc *d = &vq->vr.desc[3 * i];
		unsigned int k;

		s->hdr = (struct virtio_blk_outhdr *)meta + i;
		s->status = meta + (size_t)qd * sizeof(struct virtio_blk_outhdr) + i;
		for (k = 0; b->o.write && k < BS; k += 8) {
			uint64_t r = rnd_next(&b->rnd);

			memcpy(buf + k, &r, 8);
		}
		d[0] = (struct vring_desc){ gpa(b, s->hdr), sizeof(*s->hdr), VRING_DESC_F_NEXT,
					    3 * i + 1 };
		d[1] = (struct vring_desc){ gpa(b, buf), BS,
					    VRING_DESC_F_NEXT | (b->o.write ? 0 : VRING_DESC_F_WRITE),
					    3 * i + 2 };
		d[2] = (struct vring_desc){ gpa(b, s->status), 1, VRING_DESC_F_WRITE, 0 };
	}
	st.num = num;
	IOCTL(b->dev, VHOST_SET_VRING_NUM, &st);
	st.num = 0;
	IOCTL(b->dev, VHOST_SET_VRING_BASE, &st);
	addr.desc_user_addr = (uintptr_t)vq->vr.desc;
	addr.used_user_addr = (uintptr_t)vq->vr.used;
	addr.avail_user_addr = (uintptr_t)vq->vr.avail;
	IOCTL(b->dev, VHOST_SET_VRING_ADDR, &addr);
	st.num = b->o.busyloop_us;
	IOCTL(b->dev, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &st);
}

static void setup(struct bench *b)
{
	const struct opts *o = &b->o;
	unsigned int num = ring_num(o->qd), q;
	struct vhost_blk_backend be = { .flags = 0 };
	uint64_t features, want;
	size_t off = 4096;	/* guest physical page 0 stays unused */

	be.fd = open_backing(o, &b->nblocks);
	map_ram(b, num);
	b->dev = open(o->device, O_RDWR | O_CLOEXEC);
	if (b->dev < 0)
		die("open %s: %s", o->device, strerror(errno));
	IOCTL(b->dev, VHOST_SET_OWNER, NULL);
	IOCTL(b->dev, VHOST_BLK_SET_BACKEND, &be);
	close(be.fd);	/* the module holds its own reference */
	IOCTL(b->dev, VHOST_GET_FEATURES, &features);
	if (!(features & (1ull << VIRTIO_F_VERSION_1)))
		die("device does not offer VIRTIO_F_VERSION_1 (features %#" PRIx64 ")", features);
	b->event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	want = (1ull << VIRTIO_F_VERSION_1) | (b->event_idx ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0);
	IOCTL(b->dev, VHOST_SET_FEATURES, &want);
	set_mem_table(b);
	for (q = 0; q < o->queues; q++)
		setup_queue(b, q, num, &off);
	for (q = 0; q < o->queues; q++) {
		struct queue *vq = &b->q[q];

		vq->kick = new_eventfd();
		vq->call = new_eventfd();
		vq->err = new_eventfd();
		set_vring_file(b->dev, VHOST_SET_VRING_CALL, "VHOST_SET_VRING_CALL", q, vq->call);
		set_vring_file(b->dev, VHOST_SET_VRING_ERR, "VHOST_SET_VRING_ERR", q, vq->err);
		/* starts the queue: call and err first */
		set_vring_file(b->dev, VHOST_SET_VRING_KICK, "VHOST_SET_VRING_KICK", q, vq->kick);
	}
}

/* collect the completions of one queue, resubmit each unless stopping (then one fewer in
 * flight); returns how many completed */
static unsigned int reap(struct bench *b, unsigned int q, uint64_t end, bool *stopping,
			 unsigned int *inflight)
{
	struct queue *vq = &b->q[q];
	uint16_t used = __atomic_load_n(&vq->vr.used->idx, __ATOMIC_ACQUIRE);
	uint16_t old = vq->avail_idx;
	unsigned int n = 0;
	uint64_t now;

	if (used == vq->last_used)
		return 0;
	now = now_ns();
	if (now >= end)
		*stopping = true;
	while (vq->last_used != used) {
		struct vring_used_elem *e = &vq->vr.used->ring[vq->last_used % vq->vr.num];
		unsigned int head = e->id, i = head / 3;
		struct slot *s;

		vq->last_used++;
		if (head % 3 || i >= b->o.qd)
			die("queue %u: the device returned head %u, which is not a request's", q, head);
		s = &vq->slots[i];
		if (*s->status != VIRTIO_BLK_S_OK)
			die("queue %u: %s of sector %llu: status %u%s", q,
			    b->o.write ? "VIRTIO_BLK_T_OUT" : "VIRTIO_BLK_T_IN",
			    (unsigned long long)s->hdr->sector, *s->status,
			    *s->status == STATUS_UNSET ? " (never written)" : "");
		lat_add(&b->lat, now - s->submit_ns);
		n++;
		if (*stopping)
			(*inflight)--;
		else
			submit(b, vq, i);
	}
	publish(vq, old);
	return n;
}

static void check_ring_errors(const struct bench *b)
{
	unsigned int q;

	for (q = 0; q < b->o.queues; q++)
		if (eventfd_take(b->q[q].err))
			die("queue %u: the device signalled its vring error eventfd", q);
}

/* nothing completed: sleep on the call eventfds until something does */
static void wait_calls(struct bench *b, int timeout_ms, unsigned int inflight)
{
	struct pollfd pfd[2 * MAX_QUEUES];
	unsigned int q, n = 2 * b->o.queues;
	int r;

	for (q = 0; q < b->o.queues; q++) {
		pfd[2 * q] = (struct pollfd){ .fd = b->q[q].call, .events = POLLIN };
		pfd[2 * q + 1] = (struct pollfd){ .fd = b->q[q].err, .events = POLLIN };
	}
	r = poll(pfd, n, timeout_ms);
	if (r < 0 && errno != EINTR)
		die("poll of the call eventfds: %s", strerror(errno));
	if (r == 0)
		die("no completion within %.1f s (%u requests in flight)", b->o.timeout, inflight);
	check_ring_errors(b);
	for (q = 0; q < b->o.queues; q++)
		eventfd_take(b->q[q].call);
}

static unsigned int reap_all(struct bench *b, bool calls, uint64_t end, bool *stopping,
			     unsigned int *inflight)
{
	unsigned int q, got = 0;

	for (q = 0; q < b->o.queues; q++) {
		want_calls(&b->q[q], calls);
		got += reap(b, q, end, stopping, inflight);
	}
	return got;
}

static void run(struct bench *b, uint64_t *elapsed_ns)
{
	const struct opts *o = &b->o;
	bool polling = o->busyloop_us > 0, stopping = false;
	unsigned int inflight = o->queues * o->qd, q, i;
	uint64_t t0, end, idle_since = 0, window_ns = (uint64_t)o->busyloop_us * 1000;
	int timeout_ms = (int)(o->timeout * 1000);

	t0 = now_ns();
	end = t0 + (uint64_t)(o->runtime * 1e9);
	for (q = 0; q < o->queues; q++) {
		want_calls(&b->q[q], !polling);
		for (i = 0; i < o->qd; i++)
			submit(b, &b->q[q], i);
		publish(&b->q[q], 0);
	}
	while (inflight) {
		/* with a busy-loop window: poll the used rings, no calls, for up to the window */
		if (reap_all(b, !polling, end, &stopping, &inflight)) {
			idle_since = 0;
			continue;
		}
		if (polling) {
			uint64_t now = now_ns();

			if (!idle_since)
				idle_since = now;
			if (now - idle_since < window_ns)
				continue;
		}
		/* idle: ask for calls, look once more, then sleep until one comes */
		if (reap_all(b, true, end, &stopping, &inflight)) {
			idle_since = 0;
			continue;
		}
		wait_calls(b, timeout_ms, inflight);
		idle_since = 0;
	}
	*elapsed_ns = now_ns() - t0;
}

int main(int argc, char **argv)
{
	static struct bench b;
	uint64_t elapsed;
	double mean = 0, p99 = 0, sum = 0;
	size_t k;

	parse_args(argc, argv, &b.o);
	b.rnd = b.o.seed;
	setup(&b);
	run(&b, &elapsed);
	if (b.lat.n) {
		for (k = 0; k < b.lat.n; k++)
			sum += (double)b.lat.ns[k];
		mean = sum / (double)b.lat.n / 1000.0;
		qsort(b.lat.ns, b.lat.n, sizeof(*b.lat.ns), cmp_u64);
		k = (b.lat.n * 99 + 99) / 100;	/* ceil(0.99 n), 1-based */
		p99 = (double)b.lat.ns[k - 1] / 1000.0;
	}
	printf("{\"driver\": \"c\", \"rw\": \"%s\", \"qd\": %u, \"queues\": %u, \"busyloop_us\": %u, "
	       "\"direct\": %d, \"iops\": %.1f, \"lat_us\": %.2f, \"p99_us\": %.2f, \"ios\": %zu, "
	       "\"errors\": 0, \"seconds\": %.3f}\n",
	       b.o.write ? "randwrite" : "randread", b.o.qd, b.o.queues, b.o.busyloop_us,
	       !b.o.buffered, (double)b.lat.n / ((double)elapsed / 1e9), mean, p99, b.lat.n,
	       (double)elapsed / 1e9);
	close(b.dev);
	return 0;
}
