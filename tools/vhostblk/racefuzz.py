# SPDX-License-Identifier: GPL-2.0-or-later
"""`racefuzz`: ioctls and close racing real I/O on several queues; the kernel must survive.

A run is a series of rounds; each round is one device lifetime: open, set up 1..--queues queues,
then at the same time
- one I/O thread per queue (raceio.QueueIO: writes, reads checked against the last completed
  write, FLUSH, GET_ID; now and then a ring reset with requests in flight),
- --threads control threads doing, in a seeded random order: SET_MEM_TABLE (the same guest RAM in
  other region layouts), SET_BACKEND swaps (the backing opened again, O_DIRECT or not, now and
  then read-only) and detach/re-attach, GET_VRING_BASE + SET_VRING_NUM/BASE/ADDR (stop and resume),
  SET_VRING_KICK/CALL rebinding, SET_VRING_ADDR/NUM on a running queue, busy-loop timeout changes,
  dirty logging on and off (SET_LOG_BASE + SET_FEATURES with LOG_ALL, a queue's used ring logged
  with SET_VRING_ADDR's LOG flag meanwhile), GET_INFO/GET_FEATURES, and ioctls that must fail with
  one exact errno;
until the main thread closes the device under all of them, at a random moment; in
--reset-owner-ratio of the rounds VHOST_RESET_OWNER comes first, under the running I/O.

Every ioctl error must be one the module documents for that call (kmod-src/README.md); a request
that does not complete within --timeout, a ring error, a wrong status or wrong data, a thread stuck
in an ioctl, and new BUG/WARNING/KASAN/lockdep lines in the kernel log fail the run. The op
sequences come from --seed and the round number (a failure names its round: ``--seed S
--first-round R --rounds 1`` replays that round's choices; the thread interleaving is the kernel's).
"""

import collections
import errno
import os
import random
import sys
import tempfile
import threading
import time

from . import virtio as V
from .abi import MAX_BUSYLOOP_US
from .backend import open_backend
from .driver import Session
from .guestmem import GuestMemory
from .kmsg import KmsgWatch, report_clean
from .raceio import BLOCK, Expected, QueueIO

FILE_SIZE = 16 << 20
MEM_SIZE = 16 << 20
QUEUE_SIZES = (16, 64, 256)
BUSYLOOP_VALUES = (0, 0, 1, 20, 200, 2000, MAX_BUSYLOOP_US)
MAX_SAMPLES = 20
# control operation -> weight
OPS = {"mem_table": 10, "swap": 10, "detach": 4, "stop_resume": 10, "rebind": 4, "addr_live": 5,
       "num_live": 5, "busyloop": 10, "dirty_log": 4, "info": 5, "invalid": 6}
EXTRA_GPA = 1 << 30                 # where layouts() puts the unrelated extra region, past guest RAM
EXTRA_SIZE = 1 << 20
# dirty bitmap covering guest RAM and the extra region: one bit per 4 KiB page
LOG_SIZE = -(-(MEM_SIZE + EXTRA_GPA + EXTRA_SIZE) // BLOCK // 8 // BLOCK) * BLOCK
# what a call may fail with (besides nothing) when the module works as documented
MAY_FAIL = {"set_vring_num_live": {errno.EBUSY}}


class Stats:
    def __init__(self):
        self.counts = collections.Counter()
        self.lock = threading.Lock()

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n


def round_random(seed, round_no, who):
    """The random source of one thread of one round (reproducible from the seed)."""
    return random.Random(f"{seed}:{round_no}:{who}")


def _pick(rnd, names):
    return rnd.choices(names, [OPS[o] for o in names])[0]


def op_plan(seed, round_no, thread, n, ops=None):
    """The first ``n`` control operations control thread ``thread`` of round ``round_no`` runs."""
    rnd = round_random(seed, round_no, f"ctl{thread}")
    names = sorted(ops or OPS)
    return [_pick(rnd, names) for _i in range(n)]


def layouts(mem, extra, rnd):
    """A memory table equivalent to mem.regions(): the same RAM split at random page
    boundaries into 1-4 regions, sometimes with an unrelated extra region beyond it."""
    (gpa, size, hva), = mem.regions()
    cuts = sorted(rnd.sample(range(1, size // BLOCK), rnd.randint(0, 3)))
    bounds = [0] + [c * BLOCK for c in cuts] + [size]
    regions = [(gpa + a, b - a, hva + a) for a, b in zip(bounds, bounds[1:])]
    if rnd.random() < 0.3:
        regions.append((gpa + size + EXTRA_GPA, extra.size, extra.hva))
    rnd.shuffle(regions)
    return regions


class Round:
    """One device lifetime: its session, locks, and the calls the threads make on it."""

    def __init__(self, fz, no):
        self.fz, self.no, self.args = fz, no, fz.args
        self.stats, self.expected = fz.stats, fz.expected
        rnd = round_random(self.args.seed, no, "setup")
        self.rnd = rnd
        self.nq = rnd.randint(1, self.args.queues)
        want = V.bit(V.BLK_F_FLUSH) | V.bit(V.BLK_F_MQ)
        want |= V.bit(V.F_EVENT_IDX) if rnd.random() < 0.5 else 0
        want |= V.bit(V.F_INDIRECT_DESC) if rnd.random() < 0.5 else 0
        self.readonly = False
        self.ro_gen = 0
        self.closed = False
        self.reset = False
        self._stop = threading.Event()
        self.ctl = [threading.Lock() for _q in range(self.nq)]
        self.doing = {}                                  # thread name -> (op, since)
        self.backend_fd = fz.open_backing(rnd.random() < 0.3)
        self.session = Session(fz.open_device, MEM_SIZE, self.nq, rnd.choice(QUEUE_SIZES), want=want,
                               indirect_max=4, backend=(self.backend_fd, 0),
                               busyloop_us=rnd.choice(BUSYLOOP_VALUES))
        self.extra = GuestMemory(EXTRA_SIZE)
        self.log = GuestMemory(LOG_SIZE)
        self.be_lock = threading.Lock()
        self.log_lock = threading.Lock()

    def stopping(self):
        return self._stop.is_set()

    def fail(self, kind, msg):
        self.fz.failure(kind, f"round {self.no}: {msg}")

    def ioctl(self, name, fn, *args, may_fail=()):
        """Call ``fn(*args)``; (True, result), or (False, None) after an error, which is a failure
        unless it is in ``may_fail`` or comes after the close (ENOTTY: the fd is /dev/null then)."""
        me = threading.current_thread().name
        if self.closed:
            return False, None
        self.doing[me] = (name, time.monotonic())
        try:
            res = fn(*args)
        except OSError as e:
            code = errno.errorcode.get(e.errno, str(e.errno))
            if self.closed and (e.errno == errno.ENOTTY or not self.session.dev.IN_KERNEL):
                self.stats.add("ioctl_after_close")
            elif self.reset and e.errno == errno.EPERM:
                self.stats.add("ioctl_after_reset")     # the device has no owner any more
            elif e.errno in may_fail or e.errno in MAY_FAIL.get(name, ()):
                self.stats.add(f"{name}:{code}")
            else:
                self.fail("errno", f"{name}{args!r:.80} failed with {code} ({e.strerror}), not a "
                          f"documented result of that call")
            return False, None
        finally:
            self.doing.pop(me, None)
        self.stats.add(name)
        return True, res

    # closing ---------------------------------------------------------------------------------
    def close_device(self):
        """Close the device fd under the running threads. For the kernel device the fd number is
        pointed at /dev/null (dup2 closes the device's file atomically and the number cannot be
        reused by another thread's open), so late ioctls get ENOTTY instead of hitting another file."""
        self.closed = True
        dev = self.session.dev
        if dev.IN_KERNEL:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            os.dup2(null, dev.fd)
            os.close(null)
        else:
            dev.close()                  # again in cleanup(): the fake takes that
        self.stats.add("closes")

    def reset_owner(self):
        """VHOST_RESET_OWNER under the running threads, as a VMM resetting a device it keeps open;
        what the threads see from then on is not checked (the close follows)."""
        self.closed = self.reset = True
        self.doing["reset"] = ("reset_owner", time.monotonic())
        try:
            self.session.dev.reset_owner()
            self.stats.add("reset_owner")
        except OSError as e:
            self.fail("errno", f"RESET_OWNER failed with {errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")
        finally:
            self.doing.pop("reset", None)

    def stop(self):
        self._stop.set()

    def cleanup(self):
        self.session.close()
        self.extra.close()
        self.log.close()
        os.close(self.backend_fd)


class Control:
    """One control thread: ioctls from OPS against every queue of the round."""

    def __init__(self, rd, index):
        self.rd, self.index = rd, index
        self.plan = round_random(rd.args.seed, rd.no, f"ctl{index}")      # op_plan's sequence
        self.rnd = round_random(rd.args.seed, rd.no, f"ctl{index}-args")
        self.names = rd.fz.ops

    def run(self):
        rd = self.rd
        while not rd.stopping() and not rd.closed:
            getattr(self, _pick(self.plan, self.names))()
            time.sleep(self.rnd.random() * 0.003)

    def _q(self):
        return self.rnd.randrange(self.rd.nq)

    def mem_table(self):
        rd = self.rd
        rd.ioctl("set_mem_table", rd.session.dev.set_mem_table,
                 layouts(rd.session.mem, rd.extra, self.rnd))

    def _attach(self, direct, readonly):
        rd = self.rd
        fd = rd.fz.open_backing(direct, readonly)
        with rd.be_lock:
            flags = rd.fz.abi.VHOST_BLK_BACKEND_F_READONLY if readonly else 0
            if readonly:
                rd.ro_gen += 1
                rd.readonly = True
            ok, _r = rd.ioctl("set_backend", rd.session.dev.set_backend, fd, flags)
            if ok:
                os.close(rd.backend_fd)
                rd.backend_fd = fd
                if not readonly:
                    rd.readonly = False
                    rd.ro_gen += 1
            else:
                os.close(fd)

    def swap(self):
        self._attach(self.rnd.random() < 0.4, self.rnd.random() < 0.1)

    def detach(self):
        rd = self.rd
        with rd.be_lock:
            ok, _r = rd.ioctl("set_backend_detach", rd.session.dev.set_backend, -1, 0)
        if ok:
            time.sleep(self.rnd.random() * 0.01)
            self._attach(self.rnd.random() < 0.4, False)

    def stop_resume(self):
        """GET_VRING_BASE stops the queue; NUM/BASE/ADDR with that base resume it where it was."""
        rd, q = self.rd, self._q()
        dev, vq = rd.session.dev, rd.session.vqs[q]
        with rd.ctl[q]:
            ok, base = rd.ioctl("get_vring_base", dev.get_vring_base, q)
            if not ok:
                return
            time.sleep(self.rnd.random() * 0.003)      # the guest keeps adding and kicking
            if self.rnd.random() < 0.5 and not rd.ioctl("set_vring_num", dev.set_vring_num, q, vq.num)[0]:
                return
            if not rd.ioctl("set_vring_base", dev.set_vring_base, q, base)[0]:
                return
            if self.rnd.random() < 0.5:
                rd.ioctl("set_vring_addr", dev.set_vring_addr, q, *vq.hva_addrs())

    def rebind(self):
        rd, q = self.rd, self._q()
        s = rd.session
        with rd.ctl[q]:
            if self.rnd.random() < 0.5:
                rd.ioctl("set_vring_kick", s.dev.set_vring_kick, q, s.kick[q])
            else:
                rd.ioctl("set_vring_call", s.dev.set_vring_call, q, s.call[q])

    def addr_live(self):
        rd, q = self.rd, self._q()
        rd.ioctl("set_vring_addr_live", rd.session.dev.set_vring_addr, q, *rd.session.vqs[q].hva_addrs())

    def num_live(self):
        rd, q = self.rd, self._q()
        rd.ioctl("set_vring_num_live", rd.session.dev.set_vring_num, q, rd.session.vqs[q].num)

    def busyloop(self):
        rd, q = self.rd, self._q()
        dev = rd.session.dev
        if rd.ioctl("set_busyloop", dev.set_vring_busyloop_timeout, q, self.rnd.choice(BUSYLOOP_VALUES))[0]:
            ok, val = rd.ioctl("get_busyloop", dev.get_vring_busyloop_timeout, q)
            if ok and not 0 <= val <= MAX_BUSYLOOP_US:
                rd.fail("value", f"GET_VRING_BUSYLOOP_TIMEOUT of queue {q} returned {val}")

    def dirty_log(self):
        """Dirty logging on and off, as a VMM does when a migration starts and ends (SET_LOG_BASE,
        then SET_FEATURES with LOG_ALL; the bitmap covers every memory table mem_table sets); half
        the time one queue's used ring is logged too meanwhile (SET_VRING_ADDR with the LOG flag)."""
        rd = self.rd
        dev, feats = rd.session.dev, rd.session.features
        with rd.log_lock:
            if not (rd.ioctl("set_log_base", dev.set_log_base, rd.log.hva)[0]
                    and rd.ioctl("set_features_log", dev.set_features, feats | V.bit(V.VHOST_F_LOG_ALL))[0]):
                return
            q = self._q() if self.rnd.random() < 0.5 else None
            if q is not None:
                self._log_used(q, True)
            time.sleep(self.rnd.random() * 0.005)
            if q is not None:
                self._log_used(q, False)
            if rd.ioctl("set_features", dev.set_features, feats)[0]:
                rd.ioctl("set_log_base_off", dev.set_log_base, 0)

    def _log_used(self, q, on):
        """SET_VRING_ADDR of queue ``q`` at its addresses, its used ring logged (``on``) or not."""
        rd = self.rd
        vq = rd.session.vqs[q]
        flags, name = (V.bit(V.VHOST_VRING_F_LOG), "set_vring_addr_log") if on else (0, "set_vring_addr_unlog")
        with rd.ctl[q]:
            rd.ioctl(name, rd.session.dev.set_vring_addr, q, *vq.hva_addrs(), flags, vq.used if on else 0)

    def info(self):
        rd = self.rd
        ok, info = rd.ioctl("get_info", rd.session.dev.get_info)
        if ok and info["capacity"] not in (0, FILE_SIZE // V.SECTOR):
            rd.fail("value", f"GET_INFO capacity {info['capacity']}, backing has {FILE_SIZE // V.SECTOR}")
        ok, feats = rd.ioctl("get_features", rd.session.dev.get_features)
        if ok and not feats & V.bit(V.F_VERSION_1):
            rd.fail("value", f"GET_FEATURES {feats:#x} lacks VERSION_1")

    def invalid(self):
        """One call the module must refuse with exactly one errno, whatever else is going on."""
        rd, q = self.rd, self._q()
        dev, vq = rd.session.dev, rd.session.vqs[q]
        desc, used, avail = vq.hva_addrs()
        cases = [
            ("bad_vring_num", errno.EINVAL, dev.set_vring_num, (q, 3)),
            ("bad_vring_index", errno.ENOBUFS, dev.set_vring_num, (rd.fz.max_queues, 64)),
            ("bad_vring_base", errno.EINVAL, dev.set_vring_base, (q, 0x10000)),
            ("bad_vring_addr", errno.EINVAL, dev.set_vring_addr, (q, desc + 8, used, avail)),
            ("bad_busyloop", errno.EINVAL, dev.set_vring_busyloop_timeout, (q, MAX_BUSYLOOP_US + 1)),
            ("bad_features", errno.EINVAL, dev.set_features, (V.bit(V.F_EVENT_IDX),)),
            ("bad_backend_dir", errno.EINVAL, None, None),
            ("bad_backend_append", errno.EINVAL, None, None),
        ]
        name, want, fn, args = self.rnd.choice(cases)
        fd = -1
        if name == "bad_backend_dir":
            fd = os.open(os.path.dirname(rd.fz.path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        elif name == "bad_backend_append":
            fd = os.open(rd.fz.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        if fd >= 0:
            fn, args = dev.set_backend, (fd, 0)
        try:
            ok, _r = rd.ioctl(name, fn, *args, may_fail={want})
            if ok:
                rd.fail("errno", f"{name}{args!r:.80} succeeded; the module must refuse it with "
                        f"{errno.errorcode[want]}")
        finally:
            if fd >= 0:
                os.close(fd)


class RaceFuzzer:
    def __init__(self, args, open_device, rep, abi):
        self.args, self.open_device, self.rep, self.abi = args, open_device, rep, abi
        self.ops = sorted(args.ops or OPS)
        # rounds to run: --rounds, else 100, or as many as fit in --seconds
        self.max_rounds = args.rounds or (1 << 40 if args.seconds else 100)
        self.stats = Stats()
        self.expected = Expected()
        self.samples = []
        self.failures = collections.Counter()
        self.fail_lock = threading.Lock()
        self.rounds = 0
        self.hung = None
        self.path = None
        self.max_queues = 8

    def failure(self, kind, msg):
        with self.fail_lock:
            self.failures[kind] += 1
            if len(self.samples) < MAX_SAMPLES:
                self.samples.append(msg)
                print(f"  ! {msg}", file=sys.stderr, flush=True)

    def open_backing(self, direct, readonly=False):
        flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC | (os.O_DIRECT if direct else 0)
        try:
            return os.open(self.path, flags)
        except OSError:                  # a filesystem without O_DIRECT
            return os.open(self.path, flags & ~os.O_DIRECT)

    def run(self):
        args, rep = self.args, self.rep
        tmp = None
        if args.file:
            self.path = args.file
        else:
            tmpfd, tmp = tempfile.mkstemp(prefix="vhostblk-racefuzz-", suffix=".img")
            os.close(tmpfd)
            self.path = tmp
        fd, size, _blk = open_backend(self.path, FILE_SIZE)
        os.close(fd)
        if size < FILE_SIZE:
            rep.check("backing size", False, f"{self.path} has {size} bytes, need {FILE_SIZE}")
            return
        watch = None if args.no_kmsg else KmsgWatch()
        if watch is not None and watch.source is None:
            rep.check("kernel log readable", False, "neither /dev/kmsg nor dmesg work")
            watch = None
        t0 = time.monotonic()
        last = t0
        try:
            for no in range(args.first_round, args.first_round + self.max_rounds):
                if args.seconds and time.monotonic() - t0 >= args.seconds:
                    break
                if not self._round(no):
                    break
                self.rounds += 1
                now = time.monotonic()
                if args.progress and now - last >= args.progress:
                    last = now
                    c = self.stats.counts
                    print(f"  .. {self.rounds} rounds, {sum(v for k, v in c.items() if k.startswith('req_'))} "
                          f"requests, {c['ring_resets']} ring resets, {len(self.samples)} failures",
                          file=sys.stderr, flush=True)
        finally:
            if tmp and not self.hung:
                os.unlink(tmp)
        self._report(time.monotonic() - t0, watch)

    def _round(self, no):
        """Run one round; False when the run must stop (a thread hung or the setup failed)."""
        try:
            rd = Round(self, no)
        except OSError as e:
            self.failure("setup", f"round {no}: cannot open the backing: {e}")
            return False
        try:
            rd.session.start()
        except OSError as e:
            self.failure("setup", f"round {no}: device setup failed: {e}")
            rd.cleanup()
            return False
        self.max_queues = rd.session.dev.get_info()["max_queues"]
        span = FILE_SIZE // BLOCK // self.args.queues
        threads = [threading.Thread(target=QueueIO(rd, q, round_random(self.args.seed, no, f"io{q}"),
                                                   q * span, span).run, name=f"io{q}", daemon=True)
                   for q in range(rd.nq)]
        threads += [threading.Thread(target=Control(rd, i).run, name=f"ctl{i}", daemon=True)
                    for i in range(self.args.threads)]
        for t in threads:
            t.start()
        time.sleep(rd.rnd.uniform(0.02, self.args.round_seconds))
        if rd.rnd.random() < self.args.reset_owner_ratio:
            resetter = threading.Thread(target=rd.reset_owner, name="reset", daemon=True)
            threads.append(resetter)
            resetter.start()
            resetter.join(self.args.timeout)     # then the close; a hung reset is reported below
        rd.close_device()
        rd.stop()
        deadline = time.monotonic() + self.args.timeout + 10
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            now = time.monotonic()
            what = ", ".join(f"{n} in {rd.doing[n][0]} for {now - rd.doing[n][1]:.0f}s"
                             if n in rd.doing else f"{n} (not in an ioctl)" for n in stuck)
            self.hung = what
            self.failure("hang", f"round {no}: threads still running {self.args.timeout + 10:.0f}s "
                         f"after the close: {what}")
            return False                 # its memory may still be in use: leave it mapped
        rd.cleanup()
        return True

    def _report(self, elapsed, watch):
        rep, c = self.rep, self.stats.counts
        rep.note("rounds", self.rounds)
        rep.note("seconds", round(elapsed, 1))
        rep.note("requests", {k[4:]: v for k, v in sorted(c.items()) if k.startswith("req_")})
        rep.note("ioctls", {k: v for k, v in sorted(c.items()) if not k.startswith(("req_", "blocks_"))})
        rep.note("blocks_verified", c["blocks_verified"])
        rep.check("ran rounds", self.rounds >= 1, f"{self.rounds} rounds")
        rep.check("no thread hung in the module", self.hung is None, self.hung or "")
        for kind, what in (("errno", "every ioctl result as documented"),
                           ("timeout", "every request completed (no lost kick, no hang)"),
                           ("ring-error", "no ring error on valid rings"),
                           ("vring-base", "GET_VRING_BASE completed every request it took"),
                           ("bogus-used", "used ids valid"),
                           ("status", "request statuses as expected"),
                           ("no-status", "every completed request has a status"),
                           ("data", "reads return the last completed write"),
                           ("value", "GET_INFO / GET_FEATURES / busy-loop values sane"),
                           ("setup", "device setup in every round")):
            n = self.failures[kind]
            rep.check(what, n == 0, f"{n} failures" if n else "")
        if self.samples:
            rep.info["samples"] = self.samples
        report_clean(rep, watch)
