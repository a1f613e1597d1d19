#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build every vhost-blk package for a set of kernels and publish them as one signed repository.

    python3 packaging/build_all.py [--kernel 6.1.0-56-amd64 ...] [--suite bookworm]
        [--qemu-debs DIR] [--repo-image IMG]

Builds vhost-blk-dkms, vhost-blk-tools, vhost-blk-modules-<kernel> for each --kernel (against
/usr/src/linux-headers-<kernel>, signed with the module key in --module-key-dir), the certificate
package vhost-blk-module-cert, a metapackage vhost-blk-modules-<flavour> per kernel flavour
(depending on the module package of the newest kernel of that flavour that is not a backports
build, else the newest; --meta-kernel picks one instead), adds the patched QEMU .debs (--qemu-debs, default those
cached for the current qemu-patches series: `build_qemu.py --x86-only` then
`build_all.py --publish-qemu packaging/out/qemu ...` puts them there), and writes the repository
(and, with --repo-image, its ext4 disk image for the test hypervisor). Without --kernel the
repository holds vhost-blk-dkms and vhost-blk-tools (and QEMU) only: for a suite whose headers
this machine cannot install (trixie's need libc6 2.38 and gcc-14, a bookworm host has neither).

The result is cached in $VHOSTBLK_CACHE/packages/<key>, where the key hashes every input (module
and exerciser sources, packaging scripts, kernels, suite, QEMU .debs): an unchanged tree
costs nothing, except that a cached repository whose Release has less than half of its validity
left (Valid-Until) is re-signed and its image rewritten. Prints a JSON summary with the
repository, image and .deb directory paths (the build role publishes the .debs from there into
the fleet's repository with build_repo.py).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aptrepo
import build_kmod_deb
import modkey
import pkgcommon
import qemu_local_version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("VHOSTBLK_CACHE", "/var/cache/vhostblk-fleet"))
INPUT_DIRS = (REPO / "kmod-src", REPO / "tools" / "vhostblk", HERE)


def _files(dirs):
    for d in dirs:
        for f in sorted(d.rglob("*")):
            rel = f.relative_to(d).parts
            if f.is_file() and "__pycache__" not in rel and rel[0] != "out":
                yield f


def input_key(kernels, suite, qemu_debs, cert=b"", meta_kernels=()):
    h = hashlib.sha256()
    for f in _files(INPUT_DIRS):
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    h.update(json.dumps([sorted(kernels), suite, sorted(meta_kernels)]).encode())
    h.update(cert)  # another module signing key: other packages
    for deb in qemu_debs:
        st = deb.stat()
        h.update(f"{deb.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _run(script, *args):
    res = subprocess.run([sys.executable, str(HERE / script), *map(str, args)], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise SystemExit(f"{script} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


QEMU_SERIES = {"bookworm": "7.2", "trixie": "10.0"}


def series_key(version):
    """Hash of one qemu-patches series and its recipe: QEMU packages built from another one are stale."""
    return qemu_local_version.content_hash(qemu_local_version.PATCH_ROOT / version)[:16]


def cached_qemu_dir(suite):
    """$VHOSTBLK_CACHE/qemu-debs/<series>/<key>: where publish_qemu() keeps built QEMU packages."""
    version = QEMU_SERIES.get(suite)
    return CACHE / "qemu-debs" / version / series_key(version) if version else None


def publish_qemu(src, suite):
    """Keep the .debs build_qemu.py produced in the cache, keyed by the series they were built from."""
    dest = cached_qemu_dir(suite)
    dest.mkdir(parents=True, exist_ok=True)
    for deb in Path(src).glob("*.deb"):
        shutil.copy2(deb, dest / deb.name)
    return dest


def _newer(a, b):
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


def meta_kernels(kernels, chosen=()):
    """The kernel each vhost-blk-modules-<flavour> follows: per flavour the one in `chosen`, else the
    newest kernel package version that is not a backports build (bookworm's linux-image-amd64 stays
    on 6.1 while backports has 6.12: a metapackage on 6.12 would pull a backports kernel onto hosts
    that never asked for one), else the newest."""
    picked = {}
    for krel in chosen:
        if krel not in kernels:
            raise SystemExit(f"--meta-kernel {krel} is not one of the --kernel releases {sorted(kernels)}")
        picked[build_kmod_deb.flavour(krel)] = krel
    best = {}
    for krel in kernels:
        flav = build_kmod_deb.flavour(krel)
        version = build_kmod_deb.kernel_versions(krel)[0]
        rank = ("~bpo" not in version, version)
        old = best.get(flav)
        if old is None or rank[0] > old[0][0] or (rank[0] == old[0][0] and _newer(version, old[0][1])):
            best[flav] = (rank, krel)
    return sorted({**{f: k for f, (_r, k) in best.items()}, **picked}.values())


def build(kernels, suite, qemu_dir, repo_image, key_dir=None, module_key_dir=None, chosen_meta=()):
    with pkgcommon.locked(CACHE / "packages" / ".lock"):  # a set is not pruned while another run copies it
        return _build(kernels, suite, qemu_dir, repo_image, key_dir, module_key_dir, chosen_meta)


def _build(kernels, suite, qemu_dir, repo_image, key_dir=None, module_key_dir=None, chosen_meta=()):
    key_args = ["--key-dir", key_dir] if key_dir else []
    module_key = modkey.ModuleKey(module_key_dir or modkey.DEFAULT_KEY_DIR)
    cert = module_key.ensure().read_bytes()
    metas = meta_kernels(kernels, chosen_meta)
    qemu_dir = qemu_dir or cached_qemu_dir(suite)
    qemu_debs = sorted(qemu_dir.glob("*.deb")) if qemu_dir and qemu_dir.is_dir() else []
    qemu_debs = [d for d in qemu_debs if "-dbgsym_" not in d.name]
    key = input_key(kernels, suite, qemu_debs, cert, metas)
    out = CACHE / "packages" / key
    summary_file = out / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        summary.setdefault("debs_dir", str(out / "debs"))
        if aptrepo.refresh_due(summary["repo"]):  # Valid-Until: a cached repository ages
            _run("build_repo.py", "--refresh", "--out", summary["repo"], "--disk-image", summary["image"], *key_args)
    else:
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        debs = tmp / "debs"
        debs.mkdir(parents=True)
        _run("build_dkms_deb.py", "--out", debs)
        for krel in kernels:
            _run("build_kmod_deb.py", "--kernel", krel, "--out", debs, "--key-dir", module_key.dir,
                 *(["--metapackage"] if krel in metas else []))
        for deb in qemu_debs:
            shutil.copy2(deb, debs / deb.name)
        _run("build_repo.py", "--debs", debs, "--out", tmp / "repo", "--suite", suite,
             "--disk-image", tmp / "repo.img", *key_args)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        summary = {"key": key, "repo": str(out / "repo"), "image": str(out / "repo.img"), "suite": suite,
                   "debs_dir": str(out / "debs"),
                   "kernels": sorted(kernels), "metapackage_kernels": metas, "qemu": [d.name for d in qemu_debs],
                   "debs": sorted(p.name for p in (out / "debs").glob("*.deb"))}
        summary_file.write_text(json.dumps(summary, indent=2) + "\n")
        _prune(out)
    if repo_image:
        repo_image = Path(os.path.abspath(repo_image))
        repo_image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(summary["image"], repo_image)
        summary["image"] = str(repo_image)
    return summary


def _prune(keep, max_keep=3):
    """Keep the newest few package sets only."""
    sets = sorted((p for p in keep.parent.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[max_keep:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", action="append", default=[],
                    help="kernel release to prebuild for (repeatable; none: vhost-blk-dkms and vhost-blk-tools only)")
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--qemu-debs", type=Path,
                    help="patched QEMU .debs to include (default: those cached for the current patch series)")
    ap.add_argument("--publish-qemu", type=Path, metavar="DIR",
                    help="first store the .debs build_qemu.py wrote to DIR in the cache for the current series")
    ap.add_argument("--repo-image", type=Path, help="copy the repository disk image here")
    ap.add_argument("--key-dir", type=Path, help="repository signing key directory (default build_repo.py's)")
    ap.add_argument("--module-key-dir", type=Path,
                    help=f"module signing key directory (default {modkey.DEFAULT_KEY_DIR})")
    ap.add_argument("--meta-kernel", action="append", default=[],
                    help="the kernel vhost-blk-modules-<its flavour> depends on (repeatable, one per flavour)")
    args = ap.parse_args(argv)
    if args.publish_qemu:
        publish_qemu(args.publish_qemu, args.suite)
    print(json.dumps(build(args.kernel, args.suite, args.qemu_debs, args.repo_image, args.key_dir,
                           args.module_key_dir, args.meta_kernel), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
