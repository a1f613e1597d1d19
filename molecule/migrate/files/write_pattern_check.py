# SPDX-License-Identifier: GPL-2.0-or-later
"""Check a backing against the migrate scenario's writer (templates/migrate-writer.sh.j2); runs in
L1, standard library only, reads with O_DIRECT (no page cache between this and the other L1).

    write_pattern_check.py BACKING BLOCKS

The writer fills blocks 1..BLOCKS pass after pass and then writes pass P to the header, block 0. Stopped
at any moment, the backing must show: the header at pass H (0: never written, all zeros), every block
a whole record of its own index, block i at pass H+1 for a prefix 1..k (the pass in progress; k may be
BLOCKS when the header is not written yet) and at pass H after it (pass 0: zeros). A block with an older
pass, a younger one, another block's record or a torn block is a write that was lost or misplaced.
Prints one JSON document: ok, header_pass, prefix (k), progress (H * BLOCKS + k: blocks written in all)
and problems.
"""

import json
import mmap
import os
import re
import sys

BLOCK = 4096
RECORD = 64
RECORD_RE = re.compile(rb"vbm (?:block (\d{8})|header) pass (\d{8}) *\n")
MAX_PROBLEMS = 20


def record(text: str) -> bytes:
    return (text.ljust(RECORD - 1) + "\n").encode()


def block_of(index: int, pass_no: int) -> bytes:
    """Block ``index`` (0: the header) as the writer writes it in pass ``pass_no``."""
    text = f"vbm header pass {pass_no:08d}" if index == 0 else f"vbm block {index:08d} pass {pass_no:08d}"
    return record(text) * (BLOCK // RECORD)


def pass_in(block: bytes, index: int):
    """The pass block ``index`` holds (0 when never written), or an error text."""
    if block == bytes(BLOCK):
        return 0
    m = RECORD_RE.fullmatch(block[:RECORD])
    if not m or block != block[:RECORD] * (BLOCK // RECORD):
        return f"not a whole record: starts {block[:40]!r}"
    found = 0 if m.group(1) is None else int(m.group(1))
    if found != index:
        return f"holds the record of block {found}"
    return int(m.group(2))


def check(data: bytes, blocks: int) -> dict:
    problems = []
    header = pass_in(data[:BLOCK], 0)
    if isinstance(header, str):
        problems.append(f"header (block 0): {header}")
        header = 0
    passes = []
    for i in range(1, blocks + 1):
        got = pass_in(data[i * BLOCK:(i + 1) * BLOCK], i)
        if isinstance(got, str):
            problems.append(f"block {i}: {got}")
        passes.append(got)
    prefix = 0
    while prefix < blocks and passes[prefix] == header + 1:
        prefix += 1
    for i, got in enumerate(passes[prefix:], start=prefix + 1):
        if isinstance(got, int) and got != header:
            want = f"pass {header}" if prefix == 0 else f"pass {header} (the blocks before it are at {header + 1})"
            problems.append(f"block {i}: at pass {got}, should be at {want}")
    return {"ok": not problems, "header_pass": header, "prefix": prefix, "progress": header * blocks + prefix,
            "problems": problems[:MAX_PROBLEMS], "problem_count": len(problems)}


def read_direct(path: str, size: int) -> bytes:
    """The first ``size`` bytes of ``path``, read with O_DIRECT into a page-aligned buffer."""
    buf = mmap.mmap(-1, size)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        done = 0
        view = memoryview(buf)
        while done < size:
            n = os.preadv(fd, [view[done:]], done)
            if n == 0:
                raise SystemExit(f"{path}: ends after {done} bytes, the pattern needs {size}")
            done += n
        view.release()
        return bytes(buf)
    finally:
        os.close(fd)
        buf.close()


def main(argv):
    if len(argv) != 3 or not argv[2].isdigit() or int(argv[2]) < 1:
        raise SystemExit(f"usage: {argv[0]} BACKING BLOCKS (BLOCKS a positive number)")
    blocks = int(argv[2])
    print(json.dumps(check(read_direct(argv[1], (blocks + 1) * BLOCK), blocks)))


if __name__ == "__main__":
    main(sys.argv)
