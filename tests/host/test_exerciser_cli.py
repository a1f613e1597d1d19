# SPDX-License-Identifier: GPL-2.0-or-later
"""selftest/fuzz/bench logic end to end against the in-process fake device.

A correct fake must pass; a fake with a planted bug must make the run fail.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from exerciser_fake import REPO, failed_names, run_on_fake
from vhostblk import virtio as V
from vhostblk.fakedev import BadRing, FakeVhostBlk
from vhostblk.fuzz import Fuzzer
from vhostblk.selftest import Selftest


def run_selftest(tmp_path, fake_cls, *extra):
    return run_on_fake(Selftest, ["selftest", "--fake", "--file", str(tmp_path / "d.img"), "--size", "8M",
                                  "--timeout", "5", *extra], fake_cls)


def run_fuzz(fake_cls, cases, *extra):
    return run_on_fake(Fuzzer, ["fuzz", "--fake", "--cases", str(cases), "--no-kmsg", "--timeout", "1",
                                "--progress", "0", *extra], fake_cls)


def test_selftest_passes_on_correct_fake(tmp_path):
    rc, doc = run_selftest(tmp_path, FakeVhostBlk, "--queues", "3")
    assert rc == 0, failed_names(doc)
    assert doc["ok"] and doc["summary"]["passed"] > 40


class CorruptsReads(FakeVhostBlk):
    def _serve(self, bufs):
        n = super()._serve(bufs)
        for h, length, w in bufs:
            if w and length >= 512:
                self._wr(h, b"\x00")          # flip the first byte of IN data
                break
        return n


class AcceptsEverything(FakeVhostBlk):
    """Never reports errors: out-of-range and unknown types come back OK."""

    def _serve(self, bufs):
        self.capacity = 1 << 62
        try:
            n = super()._serve(bufs)
        except (OverflowError, OSError):
            n = 1
        wb = [(h, length) for h, length, w in bufs if w]
        if wb:
            h, length = wb[-1]
            self._wr(h + length - 1, bytes([V.S_OK]))
        return n


def test_selftest_catches_corrupted_reads(tmp_path):
    rc, doc = run_selftest(tmp_path, CorruptsReads)
    assert rc == 1
    assert any("read back" in n for n in failed_names(doc))


def test_selftest_catches_missing_error_statuses(tmp_path):
    rc, doc = run_selftest(tmp_path, AcceptsEverything)
    assert rc == 1
    names = failed_names(doc)
    assert any("UNSUPP" in n for n in names) and any("IOERR" in n for n in names)


def test_fuzz_passes_on_correct_fake():
    rc, doc = run_fuzz(FakeVhostBlk, 3000)
    assert rc == 0, failed_names(doc)
    assert doc["info"]["cases"] >= 3000
    assert doc["info"]["ring_errors"] > 0
    assert doc["info"]["outcomes"]["OK"] > 500


class IgnoresLoops(FakeVhostBlk):
    """Stops processing on a broken chain but never signals the err eventfd."""

    def _walk(self, vq, head):
        try:
            return super()._walk(vq, head)
        except BadRing:
            vq.err = -1
            raise


def test_fuzz_catches_silent_ring_breakage():
    rc, doc = run_fuzz(IgnoresLoops, 600, "--break-ratio", "1", "--batch", "8")
    assert rc == 1
    assert "every breaking case answered (completion or error eventfd)" in failed_names(doc)


class WritesReadonlyStatus(FakeVhostBlk):
    def _serve(self, bufs):
        n = super()._serve(bufs)
        h, length, w = bufs[-1]
        if not w and length == 1:
            self._wr(h, b"\x00")
        return n


def test_fuzz_catches_write_into_readonly_descriptor():
    rc, doc = run_fuzz(WritesReadonlyStatus, 1500, "--break-ratio", "1", "--batch", "4")
    assert rc == 1
    assert "read-only status never written" in failed_names(doc)


def test_cli_help_and_fake_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "tools"))
    h = subprocess.run([sys.executable, "-m", "vhostblk", "--help"], env=env,
                       capture_output=True, text=True, check=False)
    assert h.returncode == 0 and "selftest" in h.stdout and "fuzz" in h.stdout
    r = subprocess.run([sys.executable, "-m", "vhostblk", "selftest", "--fake", "--file",
                        str(tmp_path / "x.img"), "--size", "4M", "--json"], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.loads(r.stdout)["ok"] is True


def test_bench_without_fio_exits_2(tmp_path, monkeypatch):
    env = dict(os.environ, PYTHONPATH=str(REPO / "tools"), PATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "vhostblk", "bench", "--fake", "--file",
                        str(tmp_path / "b.img"), "--size", "4M", "--runtime", "0.2"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2
    assert "fio" in (r.stdout + r.stderr)


def test_selftest_sets_and_checks_the_busyloop_timeout(tmp_path):
    rc, doc = run_selftest(tmp_path, FakeVhostBlk, "--queues", "2", "--busyloop-us", "50")
    assert rc == 0, failed_names(doc)
    names = {c["name"]: c for c in doc["checks"]}
    assert names["VHOST_SET/GET_VRING_BUSYLOOP_TIMEOUT"]["ok"]
    assert names["busy-loop timeout above 10000 us refused"]["ok"]
    assert names["[plain] busy-loop timeout on every queue"]["detail"] == "[50, 50] us"


class AcceptsAnyBusyloop(FakeVhostBlk):
    MAX_BUSYLOOP_US = 1 << 40


def test_selftest_catches_an_unbounded_busyloop_timeout(tmp_path):
    rc, doc = run_selftest(tmp_path, AcceptsAnyBusyloop)
    assert rc != 0
    assert failed_names(doc) == ["busy-loop timeout above 10000 us refused"]


def _bench(tmp_path, *extra):
    env = dict(os.environ, PYTHONPATH=str(REPO / "tools"))
    return subprocess.run([sys.executable, "-m", "vhostblk", "bench", "--fake", "--no-fio", "--json",
                           "--file", str(tmp_path / "b.img"), "--size", "4M", "--runtime", "0.3",
                           "--qd", "2", "--rw", "randwrite", *extra],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_bench_measures_one_row_per_busyloop_timeout(tmp_path):
    r = _bench(tmp_path, "--busyloop-us", "0,50")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert [(x["busyloop_us"], x["qd"]) for x in rows] == [(0, 2), (50, 2)]
    assert all(x["vhost"]["ios"] > 0 and x["vhost"]["errors"] == 0 for x in rows)


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed (./dev setup installs it)")
def test_bench_buffered_runs_fio_buffered_too(tmp_path):
    """--buffered: the vhost-blk side and the fio side both without O_DIRECT, one file."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "tools"))
    r = subprocess.run([sys.executable, "-m", "vhostblk", "bench", "--fake", "--buffered", "--json",
                        "--file", str(tmp_path / "b.img"), "--size", "4M", "--runtime", "0.3",
                        "--qd", "2", "--rw", "randread"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 1 and rows[0]["vhost"]["ios"] > 0 and rows[0]["vhost"]["errors"] == 0
    assert rows[0]["fio"]["direct"] == 0 and rows[0]["fio"]["ios"] > 0


@pytest.mark.parametrize("bad", ["-1", "10001", "x"])
def test_bench_refuses_bad_busyloop_values(tmp_path, bad):
    r = _bench(tmp_path, f"--busyloop-us={bad}")
    assert r.returncode == 2 and "--busyloop-us" in r.stderr


@pytest.mark.parametrize("text,val", [("64M", 64 << 20), ("1G", 1 << 30), ("4096", 4096),
                                      ("512k", 512 << 10)])
def test_parse_size(text, val):
    from vhostblk.backend import parse_size
    assert parse_size(text) == val
