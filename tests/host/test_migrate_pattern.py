# SPDX-License-Identifier: GPL-2.0-or-later
"""The migrate scenario's data check without a VM: the guest's writer (molecule/migrate/templates/
migrate-writer.sh.j2, run here by busybox sh on a file) and the checker that reads a backing in L1
(molecule/migrate/files/write_pattern_check.py) agree, and the checker finds every kind of lost,
misplaced or torn write."""

import importlib.util
import json
import subprocess
import sys

import jinja2
import pytest
from vmharness.paths import REPO_ROOT

SCENARIO = REPO_ROOT / "molecule" / "migrate"
CHECKER = SCENARIO / "files" / "write_pattern_check.py"
BLOCKS = 8


def _load_checker():
    spec = importlib.util.spec_from_file_location("write_pattern_check", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wpc = _load_checker()


def _image(header, passes):
    """A backing as the writer leaves it: header pass, then the pass of each block (0: never written)."""
    data = wpc.block_of(0, header) if header else bytes(wpc.BLOCK)
    for i, p in enumerate(passes, start=1):
        data += wpc.block_of(i, p) if p else bytes(wpc.BLOCK)
    return data


@pytest.mark.parametrize("header, passes, prefix", [
    (0, [0] * BLOCKS, 0),                       # nothing written yet
    (0, [1, 1, 1, 0, 0, 0, 0, 0], 3),           # first pass in progress
    (0, [1] * BLOCKS, BLOCKS),                  # first pass done, header not yet written
    (1, [1] * BLOCKS, 0),                       # header written
    (4, [5, 5, 5, 5, 5, 4, 4, 4], 5),           # any later pass in progress
])
def test_states_the_writer_passes_through_are_accepted(header, passes, prefix):
    res = wpc.check(_image(header, passes), BLOCKS)
    assert res["ok"], res
    assert (res["header_pass"], res["prefix"], res["progress"]) == (header, prefix, header * BLOCKS + prefix)


@pytest.mark.parametrize("header, passes, message", [
    (4, [5, 5, 4, 5, 4, 4, 4, 4], "block 4: at pass 5, should be at pass 4 (the blocks before it are at 5)"),
    (4, [5, 5, 5, 3, 4, 4, 4, 4], "block 4: at pass 3"),      # a write of pass 4 lost
    (4, [4, 4, 4, 4, 4, 4, 4, 0], "block 8: at pass 0"),      # never written although the header says 4
    (4, [6, 4, 4, 4, 4, 4, 4, 4], "block 1: at pass 6"),      # from the future: the header write was lost
    (0, [2, 1, 0, 0, 0, 0, 0, 0], "block 1: at pass 2"),
])
def test_lost_writes_are_found(header, passes, message):
    res = wpc.check(_image(header, passes), BLOCKS)
    assert not res["ok"] and message in res["problems"][0], res


def test_misplaced_and_torn_blocks_are_found():
    data = bytearray(_image(2, [3, 3, 2, 2, 2, 2, 2, 2]))
    data[3 * wpc.BLOCK:4 * wpc.BLOCK] = wpc.block_of(5, 2)                     # block 5's data landed on block 3
    data[6 * wpc.BLOCK + 2048:7 * wpc.BLOCK] = wpc.block_of(6, 3)[2048:]       # block 6 half old, half new
    res = wpc.check(bytes(data), BLOCKS)
    assert not res["ok"] and res["problem_count"] == 2, res
    assert "block 3: holds the record of block 5" in res["problems"]
    assert any(p.startswith("block 6: not a whole record") for p in res["problems"])


def test_a_torn_header_is_found():
    data = bytearray(_image(2, [3, 3, 2, 2, 2, 2, 2, 2]))
    data[:64] = b"x" * 64
    res = wpc.check(bytes(data), BLOCKS)
    assert not res["ok"] and res["problems"][0].startswith("header (block 0): not a whole record"), res


def _writer(tmp_path):
    text = jinja2.Template((SCENARIO / "templates" / "migrate-writer.sh.j2").read_text(),
                           undefined=jinja2.StrictUndefined).render(vhostblk_migrate_blocks=BLOCKS)
    path = tmp_path / "migrate-writer.sh"
    path.write_text(text)
    return path


@pytest.mark.parametrize("passes", [1, 3])
def test_writer_and_checker_agree(tmp_path, passes):
    """The writer's passes, run by busybox sh (the guest's shell; busybox-static is a host package of
    ./dev setup) on a file, pass the checker, which reads with O_DIRECT as it does in L1."""
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(64 * 1024))
    res = subprocess.run(["busybox", "sh", str(_writer(tmp_path))], env={"DISK": str(disk), "PASSES": str(passes),
                         "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == [f"WRITER {BLOCKS} blocks"] + [f"PASS {p}" for p in range(1, passes + 1)]
    out = subprocess.run([sys.executable, str(CHECKER), str(disk), str(BLOCKS)], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == {"ok": True, "header_pass": passes, "prefix": 0, "progress": passes * BLOCKS,
                               "problems": [], "problem_count": 0}


def test_checker_refuses_a_backing_shorter_than_the_pattern(tmp_path):
    disk = tmp_path / "short.raw"
    disk.write_bytes(bytes(4 * wpc.BLOCK))
    res = subprocess.run([sys.executable, str(CHECKER), str(disk), str(BLOCKS)], capture_output=True, text=True,
                         check=False)
    assert res.returncode != 0 and "ends after 16384 bytes, the pattern needs 36864" in res.stderr
