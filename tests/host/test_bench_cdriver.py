# SPDX-License-Identifier: GPL-2.0-or-later
"""The bench's C driver (tools/vhostblk/cbench/vblk_bench.c): it compiles warning-free against
the kernel's uapi headers and ours, refuses bad arguments (exit 2, naming the option) and names
the call that failed (exit 1). Its I/O path is measured against the module by `./dev bench`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from vhostblk import cdriver  # noqa: E402

HEADER = REPO / "kmod-src/include/uapi/linux/vhost_blk.h"


@pytest.fixture(scope="module")
def exe(tmp_path_factory):
    return cdriver.build(HEADER, cache=tmp_path_factory.mktemp("cbench"))


def run(exe, *args):
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, check=False)


def test_builds_with_all_warnings_as_errors(exe):
    assert {"-Wall", "-Wextra", "-Werror"} <= set(cdriver.CFLAGS)
    assert os.access(exe, os.X_OK)


def test_build_is_cached_per_source_and_header(exe, tmp_path):
    again = cdriver.build(HEADER, cache=exe.parent.parent)
    assert again == exe
    other = tmp_path / "vhost_blk.h"
    other.write_text(HEADER.read_text() + "\n/* changed */\n")
    assert cdriver.build(other, cache=exe.parent.parent) != exe


def test_build_error_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="vblk_bench.c failed"):
        cdriver.build(HEADER, cc="false", cache=tmp_path)


def test_no_compiler_is_unavailable_not_an_error(tmp_path):
    with pytest.raises(cdriver.CDriverUnavailable, match="no C compiler"):
        cdriver.build(HEADER, cc=str(tmp_path / "no-such-cc"), cache=tmp_path)


GOOD = ["--file", "/nonexistent/b.img", "--rw", "randread", "--qd", "1", "--runtime", "1"]


def with_opt(opt, value):
    args = list(GOOD)
    if opt in args:
        i = args.index(opt)
        del args[i:i + 2]
    return args + ([opt, value] if value is not None else [])


@pytest.mark.parametrize("args,message", [
    ([], "--file is required"),
    (with_opt("--rw", None), "--rw is required"),
    (with_opt("--qd", None), "--qd is required"),
    (with_opt("--runtime", None), "--runtime is required"),
    (with_opt("--rw", "seqread"), "--rw: 'seqread' is neither randread nor randwrite"),
    (with_opt("--qd", "0"), "--qd: '0' is not an integer in 1..300"),
    (with_opt("--qd", "301"), "--qd: '301' is not an integer in 1..300"),
    (with_opt("--qd", "4x"), "--qd: '4x' is not an integer"),
    (with_opt("--queues", "17"), "--queues: '17' is not an integer in 1..16"),
    (with_opt("--busyloop-us", "-1"), "--busyloop-us: '-1' is not an integer"),
    (with_opt("--runtime", "0"), "--runtime: '0' is not a number of seconds"),
    (with_opt("--timeout", "soon"), "--timeout: 'soon' is not a number of seconds"),
    (GOOD + ["--bogus"], "unknown option or missing value: '--bogus'"),
    (GOOD + ["extra"], "unexpected argument 'extra'"),
])
def test_bad_arguments_exit_2_naming_the_option(exe, args, message):
    r = run(exe, *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "usage: vblk_bench" in r.stderr
    assert r.stdout == ""


def test_missing_backing_file_exits_1(exe):
    r = run(exe, *GOOD)
    assert r.returncode == 1
    assert "open /nonexistent/b.img with O_DIRECT: No such file or directory" in r.stderr


def test_failing_ioctl_is_named(exe, tmp_path):
    """/dev/null is no vhost device: the first ioctl fails and the message names it."""
    img = tmp_path / "b.img"
    img.write_bytes(bytes(1 << 20))
    r = run(exe, *with_opt("--file", str(img)), "--buffered", "--device", "/dev/null")
    assert r.returncode == 1
    assert r.stderr.startswith("vblk_bench: ioctl VHOST_SET_OWNER: ")


def test_bench_with_the_fake_device_says_the_c_driver_did_not_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "tools"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "vhostblk", "bench", "--fake", "--no-fio", "--json",
                        "--file", str(tmp_path / "b.img"), "--size", "4M", "--runtime", "0.2",
                        "--qd", "1", "--rw", "randread"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "in-process fake device" in doc["cdriver_note"]
    assert [("vhost" in x, "cdriver" in x) for x in doc["rows"]] == [(True, False)]
