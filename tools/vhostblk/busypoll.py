# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of busy polling (VHOST_SET_VRING_BUSYLOOP_TIMEOUT) as the guest sees it.

While a queue's worker busy-polls, the guest's kicks are off and the worker reads avail->idx itself,
so a driver that follows the ring's notification suppression (used.flags NO_NOTIFY, or avail_event
with VIRTIO_RING_F_EVENT_IDX) adds requests without an exit. In both modes (plain, event_idx):

- right after a request completed, the ring tells the driver not to notify (10 times in at most
  100 rounds: on a loaded TCG host this process may come back after the window), and requests
  published then without a kick are served; the queue's debugfs counters say the busy-poll found them
  (found_by_poll), not a kick (found_by_kick);
- requests published at random moments around the end of a short window, kicked only when the
  ring asks for it, as a driver does: every one is served. The worker turns kicks on and then reads
  avail->idx once more; without that re-check a request published just before would wait forever;
- after the window the ring asks for kicks again, and a kicked request is served (found_by_kick).

Kernel-only, as root (debugfs; the worker is pinned on a CPU of its own, so this process's own
wake-ups do not end its window): two CPUs at least.
"""

import os
import random
import time

from . import virtio as V
from .blkops import read_req
from .devstats import read_queue, stats_dir
from .driver import RingError, Session, WaitTimeout
from .scratchdev import unmet
from .slowops import kernel_threads

BLK_BITS = (1 << 24) - 1
MODES = (("plain", 0), ("event_idx", V.bit(V.F_EVENT_IDX)))
WINDOW_US = 10000          # the longest window: this process has time to publish the next request
RACE_WINDOW_US = 2000      # short: the random delays land before, around and after its end
QUIET_WANTED = 10          # requests published with the ring saying no kick was needed...
QUIET_MAX_ROUNDS = 100     # ...within this many
RACE_ROUNDS = 150
SPIN_S = 0.5               # how long a request's completion is spun for before sleeping on the call eventfd


def ring_wants_kick(vq):
    """Would the driver have to kick for one more entry published now?"""
    if vq.event_idx:
        return V.vring_need_event(vq.avail_event(), (vq.avail_idx + 1) & 0xFFFF, vq.avail_idx)
    return not vq.used_flags() & V.USED_F_NO_NOTIFY


class BusyPoll:
    def __init__(self, lc):
        self.lc, self.rep = lc, lc.rep

    def unmet(self):
        why = unmet(self.lc, "the fake device does not busy-poll", root="pinning the queue's worker on a CPU",
                    debugfs=True)
        if not why and len(os.sched_getaffinity(0)) < 2:
            why = "needs two CPUs: one for the polling worker, one for this process"
        return why

    def run(self):
        why = self.unmet()
        if why:
            self.rep.skip("[busypoll] guest kicks off while the worker polls", why)
            return
        mine = os.sched_getaffinity(0)
        self.cpus = sorted(mine)
        try:
            for mode, bits in MODES:
                self.mode(mode, bits)
        finally:
            os.sched_setaffinity(0, mine)

    def start(self, bits):
        lc = self.lc
        s = Session(lc.open_device, lc.mem, 1, lc.qsize, want=BLK_BITS | bits, backend=(lc.fd, 0),
                    busyloop_us=WINDOW_US)
        try:
            s.start()
            self.pin(s)
        except BaseException:
            s.close()
            raise
        return s

    def pin(self, s):
        """The queue's worker on one CPU, this process on another."""
        name = f"vhost-blk-{os.getpid()}.0"
        tids = [t for t, comm in kernel_threads(name[:15]).items() if name.startswith(comm)]
        if len(tids) != 1:
            raise OSError(f"cannot tell the worker of queue 0 ({name}) among {tids}")
        os.sched_setaffinity(tids[0], {self.cpus[1]})
        os.sched_setaffinity(0, {self.cpus[0]})

    def mode(self, mode, bits):
        rep = self.rep
        s = self.start(bits)
        try:
            if bits & ~s.features:
                rep.check(f"[busypoll {mode}] features negotiated", False,
                          f"asked {bits:#x}, negotiated {s.features:#x}")
                return
            d = stats_dir(s.dev)
            rep.check(f"[busypoll {mode}] debugfs counts requests found by polling and by kicks",
                      {"found_by_poll", "found_by_kick"} <= read_queue(d, 0).keys(),
                      f"{d}/queue0: {sorted(read_queue(d, 0))}")
            self.quiet(s, d, mode)
            self.after_window(s, d, mode)
            self.window_end_races(s, mode)
        except (OSError, RingError, WaitTimeout) as e:
            rep.check(f"[busypoll {mode}] requests while the worker polls", False, str(e))
        finally:
            s.close()

    def one(self, s, sector):
        """Publish one read, kick only if the ring asks for it; (kicked, request) once it is served."""
        vq = s.vqs[0]
        r = s.submit(0, read_req(s, sector, 8))
        kicked = vq.need_kick()
        if kicked:
            os.eventfd_write(s.kick[0], 1)
        # spin for the completion rather than sleep on the call eventfd: back in the window sooner
        spin_end = time.monotonic() + SPIN_S
        while vq.used_idx() == vq.last_used and time.monotonic() < spin_end:
            pass
        try:
            s.wait([r], timeout=self.lc.timeout, queues=[0])
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}; " + ("it was kicked" if kicked else "published when the ring said no kick "
                                          "was needed: lost")) from None
        s.reset_scratch()
        return kicked, r

    def quiet(self, s, d, mode):
        """Requests published right after the previous one completed: no kick needed, all served.

        Rounds go on until QUIET_WANTED of them found the worker still polling: on a loaded TCG host
        this process may come back after the window has ended, and then the ring rightly asks for a
        kick. A module that turns kicks on as soon as the ring is empty never gets there."""
        self.one(s, 0)                        # the worker is now in its window
        before = read_queue(d, 0)
        rounds, silent, statuses = 0, 0, set()
        while silent < QUIET_WANTED and rounds < QUIET_MAX_ROUNDS:
            said_quiet = not ring_wants_kick(s.vqs[0])
            kicked, r = self.one(s, 8 * (rounds % 64))
            silent += said_quiet and not kicked
            statuses.add(r.status)
            rounds += 1
        after = read_queue(d, 0)
        polled, by_kick = (after.get(k, 0) - before.get(k, 0) for k in ("found_by_poll", "found_by_kick"))
        kicks = rounds - silent
        self.rep.check(f"[busypoll {mode}] while the worker polls the ring says no kick, and requests "
                       "published without one are served", statuses == {V.S_OK} and silent >= QUIET_WANTED,
                       f"{silent} of {rounds} needed no kick (want {QUIET_WANTED}); statuses {sorted(statuses)}")
        self.rep.check(f"[busypoll {mode}] debugfs: the busy-poll found the requests published without a kick",
                       polled >= silent and polled + by_kick == rounds and by_kick <= kicks,
                       f"found_by_poll +{polled}, found_by_kick +{by_kick} for {silent} unkicked and "
                       f"{kicks} kicked requests")

    def after_window(self, s, d, mode):
        """Idle past the window: the ring asks for a kick again; a kicked request is served."""
        time.sleep(max(0.5, 50 * WINDOW_US / 1e6))
        wants = ring_wants_kick(s.vqs[0])
        before = read_queue(d, 0)
        kicked, r = self.one(s, 0)
        after = read_queue(d, 0)
        by_kick = after.get("found_by_kick", 0) - before.get("found_by_kick", 0)
        self.rep.check(f"[busypoll {mode}] after the window the ring asks for a kick again, and the kicked "
                       "request is served", wants and kicked and r.status == V.S_OK and by_kick == 1,
                       f"ring wants a kick: {wants}; kicked: {kicked}; status {r.status}; "
                       f"found_by_kick +{by_kick}")

    def window_end_races(self, s, mode):
        """Requests published before, around and after the end of a short window."""
        s.dev.set_vring_busyloop_timeout(0, RACE_WINDOW_US)
        rnd = random.Random(RACE_ROUNDS)
        kicks, statuses = 0, set()
        for i in range(RACE_ROUNDS):
            time.sleep(rnd.uniform(0, 2 * RACE_WINDOW_US / 1e6))
            try:
                kicked, r = self.one(s, 8 * (i % 64))
            except WaitTimeout as e:
                self.rep.check(f"[busypoll {mode}] requests published around the end of the window are "
                               "served", False, f"round {i}: {e}")
                return
            kicks += kicked
            statuses.add(r.status)
        self.rep.check(f"[busypoll {mode}] requests published around the end of the window are served",
                       statuses == {V.S_OK}, f"{RACE_ROUNDS} requests, {kicks} kicked as the ring asked, "
                       f"{RACE_ROUNDS - kicks} not; statuses {sorted(statuses)}")


def run(lc):
    BusyPoll(lc).run()
