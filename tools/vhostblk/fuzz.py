# SPDX-License-Identifier: GPL-2.0-or-later
"""`fuzz`: batches of malformed and valid requests; the kernel must survive all of them."""

import collections
import os
import random
import select
import sys
import tempfile
import time

from . import fuzzcases as FC
from . import virtio as V
from .backend import open_backend
from .driver import Session
from .kmsg import KmsgWatch, report_clean

FILE_SIZE = 16 << 20
POOL_SIZE = 1 << 20
CONFIGS = (V.bit(V.F_INDIRECT_DESC) | V.bit(V.F_EVENT_IDX), V.bit(V.F_INDIRECT_DESC),
           V.bit(V.F_EVENT_IDX), 0)
MAX_SAMPLES = 20
BREAK_RESERVE = 8       # descriptors kept free for the batch's final (breaking) case


class Fuzzer:
    def __init__(self, args, open_device, rep, abi):
        self.args, self.open_device, self.rep, self.abi = args, open_device, rep, abi
        self.rnd = random.Random(args.seed)
        self.nonbreak = FC.weighted(FC.NON_BREAKING)
        self.breaking = FC.weighted(FC.BREAKING)
        self.outcomes = collections.Counter()          # (kind, outcome) -> n
        self.unexpected = collections.Counter()
        self.samples = []
        self.cases = 0
        self.batches = 0
        self.timeouts = 0
        self.noresponse = 0
        self.ring_errors = 0
        self.bogus_used = 0
        self.ro_written = 0
        self.setup_errors = 0
        self.config_i = 0
        self.recoveries = 0
        self.vring_resets = 0

    # ---------------------------------------------------------------------------------
    def _sample(self, msg):
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(msg)
            print(f"  ! {msg}", file=sys.stderr, flush=True)

    def _new_session(self):
        want = (1 << 24) - 1 | CONFIGS[self.config_i % len(CONFIGS)]
        self.config_i += 1
        s = Session(self.open_device, 32 << 20, 1, self.args.queue_size, want=want,
                    indirect_max=0, backend=(self.fd, 0))
        s.start()
        self.pool = s.reserve(POOL_SIZE)
        s.mem.write(self.pool, self.rnd.randbytes(4096) * (POOL_SIZE // 4096))
        return s

    def _restart(self, s):
        want = (1 << 24) - 1 | CONFIGS[self.config_i % len(CONFIGS)]
        self.config_i += 1
        s.want = want
        s.restart()
        return s

    def run(self):
        args, rep = self.args, self.rep
        tmp = None
        if args.file:
            path = args.file
        else:
            tmpfd, path = tempfile.mkstemp(prefix="vhostblk-fuzz-", suffix=".img")
            os.close(tmpfd)
            tmp = path
        self.fd, size, _blk = open_backend(path, FILE_SIZE, direct=args.direct)
        self.cap = size // V.SECTOR
        watch = None if args.no_kmsg else KmsgWatch()
        if watch is not None and watch.source is None:
            rep.check("kernel log readable", False, "neither /dev/kmsg nor dmesg work")
            watch = None
        s = None
        t0 = time.monotonic()
        try:
            try:
                s = self._new_session()
            except OSError as e:
                rep.check("device setup", False, str(e))
                return
            last = t0
            while self.cases < args.cases:
                try:
                    broken = self._batch(s)
                except OSError as e:
                    self.setup_errors += 1
                    self._sample(f"batch {self.batches}: {e}")
                    broken = True
                if broken:
                    try:
                        self.recoveries += 1
                        if args.reopen_every and self.recoveries % args.reopen_every == 0:
                            self._restart(s)
                        else:
                            s.reset_vring(0)
                            self.vring_resets += 1
                    except OSError as e:
                        rep.check("device recovery after a ring error", False, str(e))
                        break
                if self.timeouts + self.noresponse > 20:
                    self._sample("too many timeouts, giving up")
                    break
                now = time.monotonic()
                if args.progress and now - last >= args.progress:
                    last = now
                    print(f"  .. {self.cases} cases, {self.cases / (now - t0):.0f}/s, "
                          f"{self.vring_resets} vring resets, {s.restarts} reopens",
                          file=sys.stderr, flush=True)
        finally:
            elapsed = time.monotonic() - t0
            if s is not None:
                s.close()
            os.close(self.fd)
            if tmp:
                os.unlink(tmp)
        self._report(elapsed, s.restarts if s else 0, watch)

    # one batch ----------------------------------------------------------------------------
    def _batch(self, s):
        """Build, kick and collect one batch; True if the device must be reset."""
        args = self.args
        vq = s.vqs[0]
        s.reset_scratch()
        b = FC.BatchBuilder(s, vq, self.rnd, self.pool, POOL_SIZE, self.cap,
                            bool(s.features & V.bit(V.F_INDIRECT_DESC)))
        target = args.batch or vq.num
        target = min(target, args.cases - self.cases)
        cases = []
        want_break = self.rnd.random() < args.break_ratio
        room = target - (1 if want_break else 0)
        b.limit = vq.num - BREAK_RESERVE
        while len(cases) < room:
            gen = self.rnd.choice(self.nonbreak)
            mark = (b.next_desc, s.mem.mark())
            try:
                cases.append(gen(b))
            except FC.OutOfDescriptors:
                b.next_desc = mark[0]
                s.mem.release_to(mark[1])
                break
        b.limit = vq.num
        if want_break or not cases:
            for _try in range(8):
                gen = self.rnd.choice(self.breaking)
                try:
                    cases.append(gen(b))
                    break
                except FC.OutOfDescriptors:
                    continue
        start = vq.avail_idx
        for c in cases:
            if c.kind == "avail-idx-jump":
                vq.avail_idx = (vq.avail_idx + vq.num + 1 + self.rnd.randrange(1000)) & 0xFFFF
                vq.push_head(0)
            else:
                vq.push_head(c.head)
        if vq.event_idx:
            vq.set_used_event(start + len(cases) - 1)
        else:
            vq.set_avail_flags(0)
        s.kick_now(0)
        self.batches += 1
        return self._collect(s, vq, cases, start)

    def _collect(self, s, vq, cases, start):
        timeout = self.args.timeout
        by_head = {}
        for pos, c in enumerate(cases):
            if c.head is not None:
                by_head.setdefault(c.head, []).append(pos)
        done = [False] * len(cases)
        ndone = 0
        err = False
        poll = select.poll()
        poll.register(s.call[0], select.POLLIN)
        poll.register(s.err[0], select.POLLIN)
        deadline = time.monotonic() + timeout
        err_deadline = None
        drained = False
        mm, base = s.mem.mm, s.mem.gpa_base
        while True:
            for head, ulen in vq.pop_used_raw():
                plist = by_head.get(head)
                pos = next((p for p in plist if not done[p]), None) if plist else None
                if pos is None:
                    self.bogus_used += 1
                    self._sample(f"batch {self.batches}: used id {head} was never made "
                                 f"available (or completed twice)")
                    continue
                c = cases[pos]
                done[pos] = True
                ndone += 1
                c.used_len = ulen
                if c.status_gpa is None:
                    c.outcome = "no-status"
                else:
                    sb = mm[c.status_gpa - base]
                    if c.ro_status:
                        c.outcome = "no-status"
                        if sb != FC.SENTINEL:
                            self.ro_written += 1
                            self._sample(f"{c.kind}: device wrote {sb:#x} into a read-only "
                                         f"status descriptor")
                    elif sb == FC.SENTINEL:
                        c.outcome = "no-status"
                    else:
                        c.outcome = V.STATUS_NAMES.get(sb, f"status-{sb:#04x}")
            if ndone == len(cases):
                break
            now = time.monotonic()
            if err:
                # Requests before the broken one may still be in flight. If only the final
                # breaking case is left we are done; otherwise VHOST_GET_VRING_BASE stops
                # the queue after completing in-flight requests, so one more reap is exact.
                if ndone == len(cases) - 1 and not done[-1] and cases[-1].breaking:
                    break
                if not drained:
                    drained = True
                    try:
                        s.dev.get_vring_base(0)
                        err_deadline = now          # reap once more, then stop
                        continue
                    except OSError:
                        pass                        # fall back to waiting for quiet
                if err_deadline is None or vq.used_idx() != vq.last_used:
                    err_deadline = now + min(0.3, timeout)
                    continue
                if now >= err_deadline:
                    break
                wait = err_deadline - now
            else:
                if now >= deadline:
                    break
                wait = deadline - now
                if vq.event_idx:
                    vq.set_used_event(vq.last_used)
                if vq.used_idx() != vq.last_used:
                    continue
            for fd, _ev in poll.poll(max(1, int(min(wait, 0.05 if err else wait) * 1000))):
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    continue
                if fd == s.err[0]:
                    err = True
        if not err:
            try:
                os.eventfd_read(s.err[0])
                err = True
            except BlockingIOError:
                pass
        return self._classify(s, cases, done, err, start)

    def _classify(self, s, cases, done, err, start):
        pending = [i for i, d in enumerate(done) if not d]
        reset = err or bool(pending)
        if err:
            self.ring_errors += 1
        # the first request the device did not complete is the one that broke the ring,
        # except for an avail index jump, which breaks it before anything is read
        first_bad = pending[0] if pending else None
        if err and cases and cases[-1].kind == "avail-idx-jump" and not done[-1]:
            first_bad = len(cases) - 1
        for i, c in enumerate(cases):
            if done[i]:
                pass
            elif i == first_bad:
                if err:
                    c.outcome = "ring-error"
                elif c.breaking and i == len(cases) - 1 and len(pending) == 1:
                    c.outcome = "no-response"
                    self.noresponse += 1
                    self._sample(f"batch {self.batches}: {c.kind}: no completion and no "
                                 f"error eventfd within {self.args.timeout}s")
                else:
                    c.outcome = "timeout"
                    self.timeouts += 1
                    self._sample(f"batch {self.batches}: TIMEOUT: {len(pending)} of "
                                 f"{len(cases)} requests incomplete after "
                                 f"{self.args.timeout}s without error eventfd "
                                 f"(first: {c.kind})")
            else:
                continue              # never reached because the ring broke earlier
            self.cases += 1
            self.outcomes[(c.kind, c.outcome)] += 1
            if c.outcome in ("timeout", "no-response"):
                continue
            if c.expect is not None and c.outcome not in c.expect:
                self.unexpected[(c.kind, c.outcome)] += 1
                self._sample(f"batch {self.batches} case {i}: {c.kind}: outcome {c.outcome}, "
                             f"expected one of {sorted(c.expect)} {c.detail}; chain: "
                             + self.describe_chain(s, s.vqs[0], c.head))
            elif (c.outcome == "OK" and c.data_len is not None and c.kind.startswith("valid")
                  and c.used_len != c.data_len):
                self.unexpected[(c.kind, "bad-used-len")] += 1
                self._sample(f"{c.kind}: used.len {c.used_len}, expected {c.data_len}")
        return reset

    @staticmethod
    def describe_chain(s, vq, head, limit=24):
        """A compact text dump of a descriptor chain (for failure samples)."""
        out, i = [], head
        for _try in range(limit):
            if i is None or i >= vq.num:
                out.append(f"[head/next {i} out of ring]")
                break
            addr, length, flags, nxt = vq.read_desc(i)
            item = f"#{i}:{addr:#x}+{length}/{'W' if flags & V.DESC_F_WRITE else 'R'}"
            if flags & V.DESC_F_INDIRECT:
                item += " INDIRECT["
                try:
                    for k in range(min(length // 16, limit)):
                        a, n, f, x = V.DESC.unpack(s.mem.read(addr + 16 * k, 16))
                        item += f" {a:#x}+{n}/{'W' if f & V.DESC_F_WRITE else 'R'}" \
                                f"{'>' + str(x) if f & V.DESC_F_NEXT else ''}"
                except ValueError:
                    item += " outside RAM"
                item += " ]"
            out.append(item)
            if not flags & V.DESC_F_NEXT:
                break
            i = nxt
        try:
            first = vq.read_desc(head)
            if not first[2] & V.DESC_F_INDIRECT and first[1] >= 16:
                t, _p, sec = V.OUTHDR.unpack(s.mem.read(first[0], 16))
                out.append(f"hdr type={t} sector={sec}")
        except (ValueError, IndexError, TypeError):
            pass
        return " ".join(out)

    # report ----------------------------------------------------------------------------
    def _report(self, elapsed, restarts, watch):
        rep = self.rep
        rate = self.cases / elapsed if elapsed > 0 else 0.0
        rep.note("cases", self.cases)
        rep.note("batches", self.batches)
        rep.note("seconds", round(elapsed, 1))
        rep.note("cases_per_second", round(rate, 1))
        rep.note("device_reopens", restarts)
        rep.note("vring_resets", self.vring_resets)
        rep.note("ring_errors", self.ring_errors)
        per_outcome = collections.Counter()
        per_kind = collections.defaultdict(dict)
        for (kind, outc), n in sorted(self.outcomes.items()):
            per_outcome[outc] += n
            per_kind[kind][outc] = n
        rep.note("outcomes", dict(per_outcome))
        if rep.as_json:
            rep.info["outcomes_by_kind"] = per_kind
        else:
            for kind, d in sorted(per_kind.items()):
                print(f"       {kind:26s} " + " ".join(f"{k}={v}" for k, v in sorted(d.items())))
        rep.check("ran the requested number of cases", self.cases >= self.args.cases,
                  f"{self.cases} of {self.args.cases}")
        rep.check("no timeouts", self.timeouts == 0, f"{self.timeouts} batches timed out")
        rep.check("every breaking case answered (completion or error eventfd)",
                  self.noresponse == 0, f"{self.noresponse} silent")
        rep.check("results as expected", not self.unexpected,
                  ", ".join(f"{k}:{o}={n}" for (k, o), n in sorted(self.unexpected.items())))
        rep.check("used ids valid", self.bogus_used == 0, f"{self.bogus_used} bogus")
        rep.check("read-only status never written", self.ro_written == 0,
                  f"{self.ro_written} written")
        rep.check("no ioctl errors during the run", self.setup_errors == 0,
                  f"{self.setup_errors}")
        if self.samples:
            rep.info["samples"] = self.samples
        report_clean(rep, watch)
