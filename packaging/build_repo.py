#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build a signed local apt repository from .debs, optionally as an ext4 disk image.

    packaging/build_repo.py --debs DIR [DIR ...] --out REPO [--suite bookworm]
        [--key-dir /var/cache/vhostblk-fleet/repo-key] [--disk-image IMG]

REPO gets pool/, dists/<suite>/ (Release, InRelease, Release.gpg, main/binary-amd64/Packages),
the public key vhostblk-local.gpg (binary keyring for signed-by=), vhostblk-qemu.pref
(apt preferences pinning the +vhostblk QEMU builds at 1001, when the repo holds any) and
sources.list.example. The signing key is created on first use in --key-dir and reused.

--disk-image writes REPO into an ext4 image with `mke2fs -d` (no mount, no root mount
namespace needed) for the test hypervisor: attach it read-only, mount it, and use
`deb [signed-by=MNT/vhostblk-local.gpg] file:MNT <suite> main`. No network is involved.
"""

import argparse
import json
import os
import shutil
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


def build(debs_dirs, out, suite, key_dir, timer, with_dbgsym=False):
    out.mkdir(parents=True, exist_ok=True)
    debs = aptrepo.collect_debs(debs_dirs, with_dbgsym)
    release, entries = timer("index", aptrepo.write_repo, out, debs, suite, epoch=None)
    key = RepoKey(key_dir)
    fpr = timer("sign", key.sign_release, release)
    shutil.copy2(key.keyring, out / KEYRING_NAME)
    os.chmod(out / KEYRING_NAME, 0o644)
    pinned = aptpin.pinned_packages(entries)
    pref = out / aptpin.PIN_FILE_NAME
    if pinned:
        pref.write_text(aptpin.pin_text(pinned))
    elif pref.exists():
        pref.unlink()
    (out / "sources.list.example").write_text(
        "# mount the repository disk read-only at %s, then:\n%s" % (DEFAULT_MOUNT, sources_line(suite)))
    return {"repo": str(out), "suite": suite, "fingerprint": fpr, "keyring": str(out / KEYRING_NAME),
            "pinned": pinned, "packages": [f"{e['package']} {e['version']} {e['arch']}" for e in entries]}


def dir_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debs", type=Path, nargs="+", required=True, help="directories holding .deb files")
    ap.add_argument("--out", type=Path, required=True, help="repository directory (pool/ and dists/ are replaced)")
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR, help="persistent signing key directory")
    ap.add_argument("--disk-image", type=Path, help="also write the repository into this ext4 image")
    ap.add_argument("--with-dbgsym", action="store_true",
                    help="include *-dbgsym packages (left out by default: QEMU's are hundreds of MB)")
    args = ap.parse_args(argv)

    timer = pc.Timer()
    summary = build(args.debs, args.out, args.suite, args.key_dir, timer, args.with_dbgsym)
    if args.disk_image:
        summary["disk_image"] = timer("disk image", disk_image, args.out, args.disk_image)
    summary["sources_line"] = sources_line(args.suite).strip()
    summary["steps"] = timer.steps
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
