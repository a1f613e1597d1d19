# SPDX-License-Identifier: GPL-2.0-or-later
"""The local version of the patched QEMU packages: +vhostblkN, N kept in qemu-patches/<series>/local-version.

    python3 packaging/qemu_local_version.py          # bump N of every series whose content changed
    python3 packaging/qemu_local_version.py --check  # exit 1 while a recorded hash is stale

The record holds N and the sha256 of what the packages are made from: every file of the series
directory (names and bytes, the record itself left out) and packaging/build_qemu.py, the build
recipe. Running this script after a change bumps N by one and stores the new hash; running it
again on the same tree changes nothing. tests/host/test_qemu_patches.py fails while a record
is stale, so every committed change of a series or of the recipe carries a higher N, and dpkg
orders `<Debian version>+vhostblkN` by N. Nothing needs git: a clean clone, an unpacked
collection tarball and the build host of vhostblk.fleet.build all get the same version.
"""

import argparse
import hashlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATCH_ROOT = HERE.parent / "qemu-patches"
RECIPE = HERE / "build_qemu.py"
RECORD = "local-version"
SUFFIX = "+vhostblk"
HEADER = ("# +vhostblkN of the QEMU packages built from this series; sha256 of the series and of\n"
          "# packaging/build_qemu.py. Written by packaging/qemu_local_version.py, not by hand.\n")


def content_hash(series_dir, recipe=RECIPE):
    """sha256 over the series directory's files (without the record) and the build recipe."""
    h = hashlib.sha256()
    for f in sorted(Path(series_dir).iterdir()):
        if f.is_file() and f.name != RECORD:
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(b"recipe\0" + Path(recipe).read_bytes())
    return h.hexdigest()


def read_record(series_dir):
    """(N, recorded hash); (0, '') when the series has no record yet."""
    path = Path(series_dir) / RECORD
    if not path.exists():
        return 0, ""
    text = path.read_text()
    rev = re.search(r"^revision: ([0-9]+)$", text, re.M)
    digest = re.search(r"^sha256: ([0-9a-f]{64})$", text, re.M)
    if not rev or not digest:
        raise SystemExit(f"{path}: no 'revision: N' and 'sha256: HASH' lines")
    return int(rev.group(1)), digest.group(1)


def bump(series_dir, recipe=RECIPE):
    """Record a new N when the content changed; return (N, whether it was bumped)."""
    revision, recorded = read_record(series_dir)
    current = content_hash(series_dir, recipe)
    if current == recorded:
        return revision, False
    revision += 1
    (Path(series_dir) / RECORD).write_text(f"{HEADER}revision: {revision}\nsha256: {current}\n")
    return revision, True


def local_suffix(series_dir, recipe=RECIPE):
    """('+vhostblkN', warning): the warning is non-empty when the record does not match the tree."""
    revision, recorded = read_record(series_dir)
    if revision == 0:
        return f"{SUFFIX}1", f"{Path(series_dir).name} has no {RECORD} record"
    if content_hash(series_dir, recipe) != recorded:
        changed = f"qemu-patches/{Path(series_dir).name} or {Path(recipe).name}"
        return f"{SUFFIX}{revision}", f"{changed} changed after revision {revision}: run {Path(__file__).name}"
    return f"{SUFFIX}{revision}", ""


def series_dirs(root=PATCH_ROOT):
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and (p / "series").is_file())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report stale records (exit 1 if any)")
    args = ap.parse_args(argv)
    stale = 0
    for d in series_dirs():
        if args.check:
            suffix, warning = local_suffix(d)
            print(f"{d.name}: {suffix}" + (f" STALE: {warning}" if warning else ""))
            stale += bool(warning)
        else:
            revision, bumped = bump(d)
            print(f"{d.name}: {SUFFIX}{revision}" + (" (bumped)" if bumped else " (unchanged)"))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
