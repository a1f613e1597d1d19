# SPDX-License-Identifier: GPL-2.0-or-later
"""racefuzz (the ioctl/lifecycle fuzzer) against the in-process fake device.

The correct fake must pass with every control operation exercised; fakes with a planted bug
(a lost kick, a swap losing writes, an undocumented errno, a GET_VRING_BASE that returns before
the requests it took are used, an ioctl that never returns) must make the run fail.
"""

import errno
import os
import threading

import pytest
from exerciser_fake import failed_names, run_on_fake
from vhostblk.cli import build_parser
from vhostblk.fakedev import FakeVhostBlk
from vhostblk.guestmem import GuestMemory
from vhostblk.racefuzz import OPS, RaceFuzzer, layouts, op_plan, round_random
from vhostblk.raceio import taken

# control operation -> an ioctl counter it leaves behind
OP_EVIDENCE = {"mem_table": "set_mem_table", "swap": "set_backend", "detach": "set_backend_detach",
               "stop_resume": "get_vring_base", "rebind": ("set_vring_kick", "set_vring_call"),
               "addr_live": "set_vring_addr_live", "num_live": "set_vring_num_live",
               "busyloop": "set_busyloop", "dirty_log": ("set_features_log", "set_vring_addr_log"), "info": "get_info",
               "invalid": "bad_"}


def run_racefuzz(tmp_path, fake_cls, *extra):
    return run_on_fake(RaceFuzzer, ["racefuzz", "--fake", "--no-kmsg", "--progress", "0",
                                    "--file", str(tmp_path / "rf.img"), *extra], fake_cls)


def caught(tmp_path, fake_cls, check, *extra):
    """racefuzz with ``extra`` on ``fake_cls`` fails, and ``check`` is among the failed checks."""
    rc, doc = run_racefuzz(tmp_path, fake_cls, *extra)
    assert rc == 1 and check in failed_names(doc), (rc, failed_names(doc))
    return doc


def test_passes_on_correct_fake_with_every_operation(tmp_path):
    rc, doc = run_racefuzz(tmp_path, FakeVhostBlk, "--rounds", "6", "--round-seconds", "0.6",
                           "--timeout", "5", "--queues", "3", "--reset-ratio", "0.1", "--reset-owner-ratio", "0.5")
    assert rc == 0, (failed_names(doc), doc["info"].get("samples"))
    counts = doc["info"]["ioctls"]
    assert 1 <= counts.get("reset_owner", 0) < 6, counts     # some rounds end with RESET_OWNER, not all
    for op, names in OP_EVIDENCE.items():
        names = (names,) if isinstance(names, str) else names
        assert any(k.startswith(n) for k in counts for n in names), f"{op} never ran: {counts}"
    assert counts["ring_resets"] > 0 and counts["closes"] == 6
    assert doc["info"]["blocks_verified"] > 100
    assert set(doc["info"]["requests"]) == {"write", "read", "flush", "get_id"}


class NoKickOnRestart(FakeVhostBlk):
    """SET_VRING_BASE restarts the ring but does not look at entries added while it was stopped."""

    def set_vring_base(self, i, base):
        kick, self.vrings[i].kick = self.vrings[i].kick, -1
        try:
            super().set_vring_base(i, base)
        finally:
            self.vrings[i].kick = kick


def test_catches_lost_kick_on_restart(tmp_path):
    caught(tmp_path, NoKickOnRestart, "every request completed (no lost kick, no hang)",
           "--rounds", "6", "--round-seconds", "3", "--timeout", "1", "--ops", "stop_resume", "--reset-ratio", "0")


class SwapLosesWrites(FakeVhostBlk):
    """A backend swap that throws away what was written (as a swap to a stale copy would)."""

    def set_backend(self, fd, flags=0):
        swapped = self.backend_fd >= 0 and fd >= 0
        super().set_backend(fd, flags)
        if swapped and not self.readonly:
            os.pwrite(self.backend_fd, bytes(1 << 20), 0)


def test_catches_swap_losing_writes(tmp_path):
    caught(tmp_path, SwapLosesWrites, "reads return the last completed write",
           "--rounds", "4", "--round-seconds", "1", "--timeout", "5", "--queues", "1", "--ops", "swap", "--seed", "3")


class MemTableENOMEM(FakeVhostBlk):
    calls = 0

    def set_mem_table(self, regions):
        MemTableENOMEM.calls += 1
        if MemTableENOMEM.calls % 3 == 0:
            raise OSError(errno.ENOMEM, "out of memory")
        super().set_mem_table(regions)


def test_catches_undocumented_errno(tmp_path):
    doc = caught(tmp_path, MemTableENOMEM, "every ioctl result as documented",
                 "--rounds", "3", "--round-seconds", "0.5", "--timeout", "5", "--ops", "mem_table")
    assert any("ENOMEM" in s for s in doc["info"]["samples"])


class BaseAheadOfUsed(FakeVhostBlk):
    """GET_VRING_BASE reports one request more than it completed (returns before publishing)."""

    def get_vring_base(self, i):
        return (super().get_vring_base(i) + 1) & 0xFFFF


def test_catches_vring_base_before_completion(tmp_path):
    caught(tmp_path, BaseAheadOfUsed, "GET_VRING_BASE completed every request it took",
           "--rounds", "2", "--round-seconds", "0.5", "--timeout", "5", "--ops", "info", "--reset-ratio", "1")


class RefusesLoggedUsedRing(FakeVhostBlk):
    """SET_VRING_ADDR refuses the LOG flag (a device that cannot log its used ring writes)."""

    def set_vring_addr(self, i, desc, used, avail, flags=0, log=0):
        if flags:
            raise OSError(errno.EINVAL, "flags")
        super().set_vring_addr(i, desc, used, avail, flags, log)


def test_catches_used_ring_logging_refused(tmp_path):
    doc = caught(tmp_path, RefusesLoggedUsedRing, "every ioctl result as documented",
                 "--rounds", "3", "--round-seconds", "0.5", "--timeout", "5", "--ops", "dirty_log")
    assert any("set_vring_addr_log" in s and "EINVAL" in s for s in doc["info"]["samples"])


class ResetOwnerHangs(FakeVhostBlk):
    """VHOST_RESET_OWNER never returns (a reset waiting for a worker that waits for it)."""

    def reset_owner(self):
        threading.Event().wait()


def test_reports_reset_owner_that_hangs(tmp_path):
    doc = caught(tmp_path, ResetOwnerHangs, "no thread hung in the module",
                 "--rounds", "2", "--round-seconds", "0.2", "--timeout", "1", "--reset-owner-ratio", "1")
    assert doc["info"]["rounds"] == 0 and "reset in reset_owner" in str(doc["checks"])


class StuckBusyloop(FakeVhostBlk):
    """An ioctl that never returns."""

    def get_vring_busyloop_timeout(self, i):
        threading.Event().wait()


def test_reports_thread_stuck_in_ioctl(tmp_path):
    rc, doc = run_racefuzz(tmp_path, StuckBusyloop, "--rounds", "3", "--round-seconds", "0.3",
                           "--timeout", "1", "--ops", "busyloop")
    assert rc == 1
    assert doc["info"]["rounds"] == 0          # the run stops at the hung round
    hung = next(c for c in doc["checks"] if c["name"] == "no thread hung in the module")
    assert not hung["ok"] and "ctl0 in get_busyloop" in hung["detail"]


def test_seconds_without_rounds_runs_past_the_default_round_count(tmp_path):
    rc, doc = run_racefuzz(tmp_path, FakeVhostBlk, "--seconds", "4", "--round-seconds", "0.02",
                           "--timeout", "5", "--queues", "1", "--threads", "0")
    assert rc == 0, failed_names(doc)
    assert doc["info"]["rounds"] > 100 or doc["info"]["seconds"] >= 4


def test_taken_handles_index_wrap():
    # avail index wrapped past 0: entries at 65534, 65535, 0, 1 pushed, device took two
    assert taken(0, 65534, 2) and taken(0, 65535, 2)
    assert not taken(0, 0, 2) and not taken(0, 1, 2)
    assert taken(5, 3, 9) and not taken(5, 5, 9) and not taken(5, 7, 9)


def test_op_plan_reproducible_and_restricted():
    a = op_plan(7, 3, 0, 50)
    assert a == op_plan(7, 3, 0, 50) and a != op_plan(7, 4, 0, 50) and a != op_plan(7, 3, 1, 50)
    assert set(a) <= set(OPS) and len(set(a)) > 4
    assert set(op_plan(7, 3, 0, 50, ["swap", "detach"])) == {"swap", "detach"}


def test_layouts_translate_like_the_single_region():
    mem, extra = GuestMemory(1 << 20), GuestMemory(1 << 16)
    try:
        (gpa0, size, hva0), = mem.regions()
        for r in range(30):
            regions = layouts(mem, extra, round_random(1, r, "x"))
            own = sorted(x for x in regions if x[2] != extra.hva)
            assert sum(n for _g, n, _h in own) == size and own[0][0] == gpa0
            for (g, n, h), nxt in zip(own, own[1:] + [None]):
                assert h - hva0 == g - gpa0 and n > 0 and n % 4096 == 0
                assert nxt is None or nxt[0] == g + n
            assert all(g >= gpa0 + size for g, _n, h in regions if h == extra.hva)
    finally:
        mem.close()
        extra.close()


def test_cli_rejects_unknown_operation(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["racefuzz", "--ops", "swap,explode"])
    err = capsys.readouterr().err
    assert "--ops" in err and "explode" in err and "stop_resume" in err
