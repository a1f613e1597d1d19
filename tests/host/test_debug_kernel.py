# SPDX-License-Identifier: GPL-2.0-or-later
"""The module under a debug kernel: KASAN (generic, inline), lockdep, kmemleak, atomic-sleep checks.

Opt-in (``./dev test --debug-kernel``, marker ``debug_kernel``): the kernel is built once from Debian's
linux source (tests/devtools/debug_kernel.py, about 40 minutes on 2 cores, then cached) and booted
with virtme-ng on the host's own files under TCG (no L1 VM slot). Inside it: the self-test, the ring
fuzzer (``VHOSTBLK_DEBUG_FUZZ_CASES``, default 1,000,000 cases) and the lifecycle fuzzer
(``VHOSTBLK_DEBUG_RACEFUZZ_SECONDS``, default 300); then rmmod and a kmemleak scan. Any failed check,
any kmemleak report and any BUG/WARNING/KASAN/lockdep line in the kernel log fails the test.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from devtools import debug_kernel

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from vhostblk.kmsg import BAD  # noqa: E402

pytestmark = pytest.mark.debug_kernel

FUZZ_CASES = int(os.environ.get("VHOSTBLK_DEBUG_FUZZ_CASES", "1000000"))
RACEFUZZ_SECONDS = int(os.environ.get("VHOSTBLK_DEBUG_RACEFUZZ_SECONDS", "300"))
GUEST = REPO / "tests/devtools/debug_kernel_guest.sh"


def _exerciser(out: Path, name: str):
    """(exit status, seconds, JSON document) of one exerciser run in the guest."""
    rc, seconds = (out / f"{name}.rc").read_text().split()
    try:
        doc = json.loads((out / f"{name}.json").read_text())
    except (OSError, ValueError):
        doc = {"ok": False, "summary": {}, "info": {}, "checks": [],
               "error": (out / f"{name}.err").read_text(errors="replace")[-2000:]}
    return int(rc), int(seconds), doc


def _failed(doc):
    return [f"{c['name']}: {c['detail']}" for c in doc["checks"] if c["ok"] is False] or doc.get("error", "")


def test_module_clean_under_kasan_lockdep_kmemleak(tmp_path, evidence):
    tree = debug_kernel.ensure(log=print)
    kmod = tmp_path / "kmod"
    shutil.copytree(REPO / "kmod-src", kmod)
    build = subprocess.run(["make", "-C", str(tree), f"M={kmod}", "modules"], capture_output=True, text=True,
                           check=False)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    out = tmp_path / "out"
    out.mkdir()
    budget = 1800 + FUZZ_CASES // 200 + RACEFUZZ_SECONDS
    start = time.monotonic()
    vng = subprocess.run(["vng", "--run", str(tree / "arch/x86/boot/bzImage"), "--disable-kvm", "--cpus", "2",
                          "--memory", "3G", "--rwdir", str(tmp_path), "--",
                          "sh", str(GUEST), str(out), str(kmod / "vhost_blk.ko"), str(FUZZ_CASES),
                          str(RACEFUZZ_SECONDS)],
                         capture_output=True, text=True, timeout=budget, check=False)
    took = time.monotonic() - start
    assert not (out / "fail").exists(), (out / "fail").read_text()
    assert (out / "kmemleak.txt").is_file(), f"the guest did not finish (vng rc {vng.returncode}): {vng.stderr[-3000:]}"
    release = (out / "release").read_text().strip()

    results = {name: _exerciser(out, name) for name in ("selftest", "fuzz", "racefuzz")}
    st_rc, st_s, st = results["selftest"]
    fz_rc, fz_s, fz = results["fuzz"]
    rf_rc, rf_s, rf = results["racefuzz"]
    evidence(f"debug kernel {release} (KASAN, lockdep, kmemleak) under vng/TCG, {took:.0f}s in all: "
             f"selftest {st['summary'].get('passed')} passed / {st['summary'].get('failed')} failed / "
             f"{st['summary'].get('skipped')} skipped in {st_s}s; ring fuzzer {fz['info'].get('cases')} cases "
             f"in {fz_s}s; racefuzz {rf['info'].get('rounds')} rounds, {sum(rf['info'].get('requests', {}).values())} "
             f"requests, {rf['info'].get('blocks_verified')} blocks verified in {rf_s}s")
    bad = [line for line in (out / "dmesg.txt").read_text(errors="replace").splitlines() if BAD.search(line)]
    leaks = (out / "kmemleak.txt").read_text(errors="replace")
    evidence(f"debug kernel: {len(bad)} BUG/WARNING/KASAN/lockdep lines in dmesg, "
             f"kmemleak: {leaks.count('unreferenced object')} unreferenced objects")
    assert st_rc == 0 and st["ok"], _failed(st)
    assert fz_rc == 0 and fz["ok"] and fz["info"]["cases"] >= FUZZ_CASES, _failed(fz)
    assert rf_rc == 0 and rf["ok"], _failed(rf)
    assert not bad, "\n".join(bad[:40])
    assert "unreferenced object" not in leaks, leaks[:4000]
