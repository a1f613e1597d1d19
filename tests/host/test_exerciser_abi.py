# SPDX-License-Identifier: GPL-2.0-or-later
"""The exerciser's ABI numbers must equal what a C compiler sees in the header."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from vhostblk import abi  # noqa: E402

HEADER = REPO / "kmod-src/include/uapi/linux/vhost_blk.h"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc missing")


def _c_program(a):
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/vhost.h>",
             "#include <linux/vhost_blk.h>", "int main(void) {"]
    for name in sorted(a.ioctls):
        lines.append(f'  printf("ioctl {name} %lu\\n", (unsigned long)({name}));')
    for sname, sdef in sorted(a.structs.items()):
        lines.append(f'  printf("sizeof {sname} %zu\\n", sizeof(struct {sname}));')
        for fname, _code, _count, _off in sdef.fields:
            lines.append(f'  printf("offsetof {sname}.{fname} %zu\\n", '
                         f"offsetof(struct {sname}, {fname}));")
    for sname in sorted(abi.STD_STRUCTS):
        lines.append(f'  printf("sizeof {sname} %zu\\n", sizeof(struct {sname}));')
    for cname, val in sorted(a.consts.items()):
        if isinstance(val, int):
            lines.append(f'  printf("const {cname} %llu\\n", (unsigned long long)({cname}));')
    for sname in sorted(a.strings):
        lines.append(f'  printf("string {sname} %s\\n", {sname});')
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_values(tmp_path_factory):
    a = abi.Abi(HEADER)
    d = tmp_path_factory.mktemp("abi")
    src, exe = d / "abi.c", d / "abi"
    src.write_text(_c_program(a))
    cc = subprocess.run(["gcc", "-Wall", "-Werror", "-I", str(REPO / "kmod-src/include/uapi"),
                         "-o", str(exe), str(src)], capture_output=True, text=True, check=False)
    assert cc.returncode == 0, cc.stderr
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    vals = {}
    for line in out.splitlines():
        kind, name, value = line.split(" ", 2)
        vals[(kind, name)] = value
    return a, vals


def test_every_ioctl_number_matches_c(c_values):
    a, vals = c_values
    assert a.our_ioctls, "no ioctls parsed from our header"
    assert {"VHOST_BLK_SET_BACKEND", "VHOST_BLK_GET_INFO"} <= set(a.our_ioctls)
    for name, num in a.ioctls.items():
        assert int(vals[("ioctl", name)]) == num, f"{name}: python {num:#x}"


def test_struct_sizes_and_offsets_match_c(c_values):
    a, vals = c_values
    for sname, sdef in a.structs.items():
        assert int(vals[("sizeof", sname)]) == sdef.size, sname
        for fname, _code, _count, off in sdef.fields:
            assert int(vals[("offsetof", f"{sname}.{fname}")]) == off, f"{sname}.{fname}"
    for sname, fmt in abi.STD_STRUCTS.items():
        import struct
        assert int(vals[("sizeof", sname)]) == struct.calcsize(fmt), sname


def test_constants_and_strings_match_c(c_values):
    a, vals = c_values
    for cname, val in a.consts.items():
        assert int(vals[("const", cname)]) == val, cname
    for sname, val in a.strings.items():
        assert vals[("string", sname)] == val


def test_parser_rejects_unknown_field_type(tmp_path):
    h = tmp_path / "bad.h"
    h.write_text("struct x { float f; };\n")
    with pytest.raises(ValueError):
        abi.Abi(h)


def test_parser_layout_padding(tmp_path):
    h = tmp_path / "pad.h"
    h.write_text("struct p { __u8 a; __u64 b; __u16 c[3]; };\n#define F (1U << 3) | 0x10\n")
    a = abi.Abi(h)
    p = a.struct("p")
    assert [f[3] for f in p.fields] == [0, 8, 16]
    assert p.size == 24
    assert a.F == 0x18
    assert p.unpack(p.pack(a=1, b=2, c=[3, 4, 5])) == {"a": 1, "b": 2, "c": [3, 4, 5]}


def test_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("VHOST_BLK_UAPI_HEADER", str(tmp_path / "missing.h"))
    with pytest.raises(FileNotFoundError):
        abi.find_header()
    monkeypatch.setenv("VHOST_BLK_UAPI_HEADER", str(HEADER))
    assert abi.find_header() == HEADER
