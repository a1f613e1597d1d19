# SPDX-License-Identifier: GPL-2.0-or-later
"""Rewrite patch 0001 of every QEMU series so that its vendored vhost_blk.h is the uapi header again.

Run after changing kmod-src/include/uapi/linux/vhost_blk.h; tests/host/test_qemu_patches.py
fails until the copies agree. The patch keeps its headers and description; the diffstat, blob id
and hunk are recomputed from the header. A refreshed series gets the next +vhostblkN
(qemu_local_version.py).
"""

import hashlib
import re
import sys
from pathlib import Path

import qemu_local_version

REPO = Path(__file__).resolve().parents[1]
UAPI = REPO / "kmod-src" / "include" / "uapi" / "linux" / "vhost_blk.h"
VENDORED = "linux-headers/linux/vhost_blk.h"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def refreshed(patch: str, header: bytes) -> str:
    lines = header.decode().splitlines()
    n = len(lines)
    head, sep, _rest = patch.partition("\n---\n")
    if not sep:
        raise ValueError("no '---' line after the patch description")
    stat = (f" {VENDORED} | {n} {'+' * min(n, 33)}\n 1 file changed, {n} insertions(+)\n"
            f" create mode 100644 {VENDORED}\n")
    diff = (f"diff --git a/{VENDORED} b/{VENDORED}\nnew file mode 100644\n"
            f"index 00000000..{git_blob_id(header)[:8]}\n--- /dev/null\n+++ b/{VENDORED}\n"
            f"@@ -0,0 +1,{n} @@\n" + "".join(f"+{line}\n" for line in lines))
    return head + sep + stat + "\n" + diff


def main() -> int:
    header = UAPI.read_bytes()
    for patch in sorted(REPO.glob("qemu-patches/*/0001-linux-headers-add-vhost_blk.h.patch")):
        text = patch.read_text()
        if not re.search(r"^diff --git a/" + re.escape(VENDORED), text, flags=re.M):
            raise SystemExit(f"{patch}: does not add {VENDORED}")
        new = refreshed(text, header)
        if new != text:
            patch.write_text(new)
            revision, _bumped = qemu_local_version.bump(patch.parent)
            print(f"refreshed {patch.relative_to(REPO)}: {qemu_local_version.SUFFIX}{revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
