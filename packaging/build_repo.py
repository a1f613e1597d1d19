#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Publish .debs into the signed local apt repository, or re-sign it; optionally as an ext4 image.

    packaging/build_repo.py --debs DIR [DIR ...] --out REPO [--codename bookworm]
        [--keep-versions 3] [--valid-days 30] [--keep-generations 3] [--drop-package NAME ...]
        [--key-dir /var/lib/vhostblk-fleet/repo-key] [--disk-image IMG]
    packaging/build_repo.py --refresh --out REPO [--valid-days 30] [--force]

REPO holds every codename published into it (dists/<codename>/, one shared pool/); a publish
adds the .debs to one codename, keeps the --keep-versions highest versions of each package there
(rollback: apt-get install pkg=<older version>) and switches to the new signed tree atomically
(see aptrepo.py). Nothing is rewritten when the indexes would not change. --refresh re-signs
every codename with a new Date and Valid-Until (no rebuild) when less than half of the validity is
left, or always with --force; run it from a timer (the build role installs one).

REPO also gets the public key vhostblk-local.gpg (binary keyring for signed-by=),
vhostblk-qemu.pref (apt preferences: our origin at Debian's priority, see aptpin.py; when the repo
holds +vhostblk builds) and sources.list.example. The signing key is created on first use in
--key-dir and reused (an older key in /var/cache/vhostblk-fleet/repo-key is moved there first).

--disk-image writes REPO into an ext4 image with `mke2fs -d` (no mount, no root mount
namespace needed) for the test hypervisor: attach it read-only, mount it, and use
`deb [signed-by=MNT/vhostblk-local.gpg] file:MNT <codename> main`. No network is involved.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import aptpin
import aptrepo
import pkgcommon as pc
from repokey import DEFAULT_KEY_DIR, KEYRING_NAME, RepoKey

DEFAULT_MOUNT = "/mnt/vhostblk-repo"


def sources_line(suite, root=DEFAULT_MOUNT, keyring=None):
    keyring = keyring or f"{root}/{KEYRING_NAME}"
    return f"deb [signed-by={keyring}] file:{root} {suite} {aptrepo.COMPONENT}\n"


def _write_atomic(path, data):
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    os.chmod(tmp, 0o644)
    tmp.replace(path)


def top_level_files(key):
    """What a publish writes beside pool/ and dists/ once the new tree is live."""

    def write(repo, state):
        out = repo.root
        _write_atomic(out / KEYRING_NAME, key.keyring.read_bytes())
        entries = [e for codename_entries in state.values() for e in codename_entries]
        pinned = aptpin.pinned_packages(entries)
        pref = out / aptpin.PIN_FILE_NAME
        if pinned:
            _write_atomic(pref, aptpin.pin_text())
        elif pref.exists():
            pref.unlink()
        lines = "".join(sources_line(c) for c in sorted(state))
        _write_atomic(out / "sources.list.example",
                      f"# mount the repository disk read-only at {DEFAULT_MOUNT}, then one of:\n{lines}")

    return write


def build(debs_dirs, out, codename, key_dir, timer, with_dbgsym=False, refresh=False, force=False, date=None,
          **options):
    debs = [] if refresh else aptrepo.collect_debs(debs_dirs, with_dbgsym)
    key = RepoKey(key_dir)
    fpr = timer("key", key.ensure)
    summary = timer("publish", aptrepo.publish, out, key, codename=None if refresh else codename, debs=debs,
                    refresh=refresh, force=force, date=date, on_switch=top_level_files(key), **options)
    entries = [e.split()[0] for lst in summary["codenames"].values() for e in lst if aptpin.LOCAL_VERSION_MARK in e]
    summary.update(fingerprint=fpr, key_migrated=key.migrated, keyring=str(Path(out) / KEYRING_NAME),
                   pinned=sorted(set(entries)), suite=codename)
    if codename:
        summary["packages"] = summary["codenames"].get(codename, [])
    return summary


def dir_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and not f.is_symlink())


def disk_image(repo, image, label="vhostblk-repo"):
    """ext4 image whose root directory is the repository; world-readable, owned by root."""
    for f in Path(repo).rglob("*"):
        if not f.is_symlink():
            os.chmod(f, 0o755 if f.is_dir() else 0o644)
    size_kib = max(16 * 1024, int(dir_size(repo) * 1.3) // 1024 + 8 * 1024)
    image = Path(image)
    image.parent.mkdir(parents=True, exist_ok=True)
    if image.exists():
        image.unlink()
    pc.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-L", label, "-E", "root_owner=0:0",
            "-d", repo, image, f"{size_kib}k"], capture_output=True, text=True)
    return {"image": str(image), "size_kib": size_kib, "label": label}


def _positive(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value
    return parse


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debs", type=Path, nargs="+", help="directories holding .deb files")
    ap.add_argument("--out", type=Path, required=True, help="repository directory (other codenames are kept)")
    ap.add_argument("--codename", "--suite", dest="codename", default="bookworm",
                    help="codename to publish the .debs into (dists/<codename>)")
    ap.add_argument("--refresh", action="store_true",
                    help="re-sign every codename with a new Valid-Until, no .debs (only when due unless --force)")
    ap.add_argument("--force", action="store_true", help="write a new generation even when nothing changed")
    ap.add_argument("--keep-versions", type=_positive(1), default=aptrepo.DEFAULT_KEEP_VERSIONS,
                    help="versions of each package kept per codename (rollback)")
    ap.add_argument("--valid-days", type=_positive(1), default=aptrepo.DEFAULT_VALID_DAYS,
                    help="Valid-Until = Date + this many days")
    ap.add_argument("--keep-generations", type=_positive(2), default=aptrepo.DEFAULT_KEEP_GENERATIONS,
                    help="dists trees (and their by-hash files and pool files) kept for clients in flight")
    ap.add_argument("--drop-package", action="append", default=[], metavar="NAME",
                    help="remove every version of this package from the codename (repeatable)")
    ap.add_argument("--date", type=int, help="Date of the Release files as a Unix time (default now; tests)")
    ap.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR, help="persistent signing key directory")
    ap.add_argument("--disk-image", type=Path, help="also write the repository into this ext4 image")
    ap.add_argument("--with-dbgsym", action="store_true",
                    help="include *-dbgsym packages (left out by default: QEMU's are hundreds of MB)")
    args = ap.parse_args(argv)
    if args.refresh == bool(args.debs):
        ap.error("give either --debs (publish) or --refresh (re-sign)")
    if not aptrepo.CODENAME_RE.match(args.codename):
        ap.error(f"--codename {args.codename!r}: lower-case Debian codename expected (bookworm, trixie)")

    timer = pc.Timer()
    summary = build(args.debs, args.out, args.codename, args.key_dir, timer, args.with_dbgsym,
                    refresh=args.refresh, force=args.force, date=args.date, keep_versions=args.keep_versions,
                    valid_days=args.valid_days, keep_generations=args.keep_generations,
                    drop=args.drop_package)
    if args.disk_image:
        summary["disk_image"] = timer("disk image", disk_image, args.out, args.disk_image)
    summary["sources_line"] = sources_line(args.codename).strip()
    summary["steps"] = timer.steps
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
