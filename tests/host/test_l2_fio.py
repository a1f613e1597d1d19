# SPDX-License-Identifier: GPL-2.0-or-later
"""fio in L2 guests, without a VM: the shell protocol (run against a fake fio) and the parsing."""

import json
import subprocess

import pytest
from vmharness import l2_fio

FAKE_FIO = """#!/bin/sh
out=
for a in "$@"; do case "$a" in --output=*) out=${a#--output=} ;; esac; done
printf '%s\\n' "$@" > "$FAKE_FIO_ARGV"
cat "$FAKE_FIO_JSON" > "$out"
echo "fio: a note on stderr" >&2
exit "${FAKE_FIO_RC:-0}"
"""


def _job(read_bytes=8 << 20, write_bytes=8 << 20, error=0):
    side = {"iops": 2048.0, "total_ios": 2048, "clat_ns": {"mean": 1500000.0}}
    return {"jobs": [{"jobname": "verify", "error": error, "read": {**side, "io_bytes": read_bytes},
                      "write": {**side, "io_bytes": write_bytes, "iops": 1024.0, "clat_ns": {"mean": 250000.0}}}]}


def _run_sh(tmp_path, script, data, rc=0):
    (tmp_path / "fio").write_text(FAKE_FIO)
    (tmp_path / "fio").chmod(0o755)
    (tmp_path / "in.json").write_text(json.dumps(data, indent=2))
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "FAKE_FIO_ARGV": str(tmp_path / "argv"),
           "FAKE_FIO_JSON": str(tmp_path / "in.json"), "FAKE_FIO_RC": str(rc), "DISK": "/dev/vdz"}
    res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, check=True)
    return res.stdout, (tmp_path / "argv").read_text().splitlines()


def test_fio_sh_prints_a_block_the_parser_reads_back(tmp_path):
    script = l2_fio.fio_sh("t1", {"filename": "$DISK", "rw": "randwrite", "time_based": None, "iodepth": 16})
    out, argv = _run_sh(tmp_path, script, _job())
    assert "--filename=/dev/vdz" in argv, "payload variables expand inside the quoted option"
    assert "--time_based" in argv and "--iodepth=16" in argv and "--output-format=json" in argv
    # the serial console turns \n into \r\n and kernel lines may come between runs
    console = "[    1.0] virtio_blk virtio1: [vda]\r\n" + out.replace("\n", "\r\n")
    runs = l2_fio.parse_runs(console)
    assert runs["t1"]["rc"] == 0 and runs["t1"]["stderr"] == ["fio: a note on stderr"]
    assert l2_fio.point(runs["t1"], "write") == {"iops": 1024.0, "clat_us": 250.0, "ios": 2048}
    assert l2_fio.point(runs["t1"], "read")["clat_us"] == 1500.0


def test_fio_exit_status_and_missing_json(tmp_path):
    out, _err = _run_sh(tmp_path, l2_fio.fio_sh("bad", {"rw": "read"}), {"jobs": []}, rc=1)
    runs = l2_fio.parse_runs(out)
    assert runs["bad"]["rc"] == 1
    with pytest.raises(ValueError, match="no JSON"):
        l2_fio.point(runs["bad"], "read")
    assert "fio exit status 1" in l2_fio.verify_problems(runs["bad"], 8 << 20)


def test_several_runs_and_a_truncated_one():
    console = "\n".join([f"{l2_fio.BEGIN} a rc=0", json.dumps(_job()), f"{l2_fio.END} a",
                         f"{l2_fio.BEGIN} b rc=0", '{"jobs": [', "Kernel panic - not syncing"])
    runs = l2_fio.parse_runs(console)
    assert l2_fio.point(runs["a"], "write")["iops"] == 1024.0
    assert runs["b"]["json"] is None


@pytest.mark.parametrize("kw, problem", [
    ({}, None),
    ({"read_bytes": 4 << 20}, "verify read 4194304 bytes"),
    ({"write_bytes": 0}, "wrote 0 bytes"),
    ({"error": 84}, "job error 84"),
])
def test_verify_problems(kw, problem):
    run = {"rc": 0, "json": _job(**kw), "stderr": []}
    problems = l2_fio.verify_problems(run, 8 << 20)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_verify_messages_on_stderr_are_problems():
    run = {"rc": 0, "json": _job(), "stderr": ["verify: bad magic header 5968, wanted acca at file /dev/vda"]}
    assert any("bad magic" in p for p in l2_fio.verify_problems(run, 8 << 20))


def test_labels_and_options_are_checked():
    with pytest.raises(ValueError, match="label"):
        l2_fio.fio_sh("a b", {})
    with pytest.raises(ValueError, match="quotes"):
        l2_fio.fio_sh("x", {"filename": '"; reboot; "'})
