#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the vhost-blk-dkms and vhost-blk-tools .debs (debhelper + dh-dkms) in a temporary build directory.

    packaging/build_dkms_deb.py --out DIR [--lintian] [--keep-build]

The version comes from kmod-src/VERSION only. Everything generated (debian/changelog,
dkms.conf from kmod-src/dkms.conf.in, debian/*.install with the versioned path) is written
into the temporary build tree, never into the repository. vhost-blk-dkms ships
  /usr/src/vhost-blk-VERSION/            module source, include/uapi header, dkms.conf
  /lib/udev/rules.d/60-vhost-blk-dkms.rules       /dev/vhost-blk root:kvm 0660
  /usr/lib/modules-load.d/vhost-blk-dkms.conf     load the module at boot
and vhost-blk-tools (needed with the prebuilt module packages too)
  /usr/lib/vhost-blk/vhostblk/           the exerciser and the vhost-user back end (Python)
  /usr/lib/vhost-blk/vhost_blk.h         the ABI header they read
  /usr/sbin/vhost-blk-selftest           wrapper: modprobe if needed, run the selftest
  /usr/sbin/vhost-blk-user               the vhost-user back end, one process per disk
  /lib/systemd/system/vhost-blk-user@.service, the vhost-blk system user, /run/vhost-blk
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pkgcommon as pc

DEBIAN_TEMPLATES = pc.FILES / "dkms"


def changelog(version, epoch):
    return (f"{pc.SOURCE_NAME} ({version}) unstable; urgency=medium\n\n"
            f"  * vhost-blk {version} (kmod-src/VERSION), built by packaging/build_dkms_deb.py.\n\n"
            f" -- {pc.maintainer()}  {pc.rfc2822(epoch)}\n")


def dkms_conf(version):
    text = (pc.KMOD_SRC / "dkms.conf.in").read_text()
    return pc.fill_template(text, VERSION=version)


def prepare_tree(build, version, epoch):
    """Lay out the source tree dpkg-buildpackage runs in; return its path."""
    tree = build / f"{pc.SOURCE_NAME}-{version}"
    debian = tree / "debian"
    shutil.copytree(DEBIAN_TEMPLATES, debian)
    for f in debian.rglob("*"):
        if f.is_file() and f.name != "rules":
            f.write_text(pc.fill_template(f.read_text(), VERSION=version, MAINTAINER=pc.maintainer()))
    (debian / "changelog").write_text(changelog(version, epoch))
    (debian / f"{pc.DKMS_PACKAGE}.dkms").write_text(dkms_conf(version))
    pc.copy_module_source(tree / "kmod")
    (tree / "kmod-doc").mkdir()
    shutil.copy2(pc.KMOD_SRC / "README.md", tree / "kmod-doc" / "README.md")
    pc.copy_exerciser(tree / "vhostblk")
    shutil.copy2(pc.KMOD_SRC / "include" / "uapi" / "linux" / "vhost_blk.h", tree / "vhost_blk.h")
    for name in ("vhost-blk-selftest", "vhost-blk-selftest.8", "vhost-blk-user", "vhost-blk-user.8",
                 "vhost-blk-user@.service"):
        shutil.copy2(pc.FILES / name, tree / name)
    (tree / "device").mkdir()
    with open(debian / f"{pc.DKMS_PACKAGE}.install", "a") as install:
        for path, src in pc.device_files(pc.DKMS_PACKAGE).items():
            shutil.copy2(src, tree / "device" / Path(path).name)
            install.write(f"device/{Path(path).name} {Path(path).parent}/\n")
    return tree


def build(tree, epoch):
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), DEB_BUILD_OPTIONS="nocheck")
    log = tree.parent / "build.log"
    with open(log, "wb") as fh:
        res = subprocess.run(["dpkg-buildpackage", "-b", "-uc", "-us", "--no-pre-clean"],
                             cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if res.returncode:
        raise SystemExit(f"dpkg-buildpackage failed:\n{log.read_text()[-4000:]}")
    debs = [sorted(tree.parent.glob(f"{name}_*.deb")) for name in (pc.DKMS_PACKAGE, pc.TOOLS_PACKAGE)]
    if [len(d) for d in debs] != [1, 1]:
        raise SystemExit(f"expected one {pc.DKMS_PACKAGE} and one {pc.TOOLS_PACKAGE} deb, found {debs}")
    return [d[0] for d in debs]


def lintian(*debs):
    """Run lintian; return (exit status, output)."""
    res = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info", *map(str, debs)],
                         capture_output=True, text=True, check=False)
    return res.returncode, (res.stdout + res.stderr).strip()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory for the .deb and its .buildinfo")
    ap.add_argument("--lintian", action="store_true", help="run lintian --fail-on error,warning on the result")
    ap.add_argument("--keep-build", action="store_true", help="keep the temporary build tree (path printed)")
    args = ap.parse_args(argv)

    timer = pc.Timer()
    version = pc.module_version()
    epoch = pc.source_date_epoch()
    build_dir = Path(tempfile.mkdtemp(prefix="pkg-dkmsdeb-"))
    try:
        tree = timer("prepare", prepare_tree, build_dir, version, epoch)
        debs = timer("dpkg-buildpackage", build, tree, epoch)
        args.out.mkdir(parents=True, exist_ok=True)
        dests = [args.out / deb.name for deb in debs]
        for deb, dest in zip(debs, dests):
            shutil.copy2(deb, dest)
        summary = {"deb": str(dests[0]), "tools_deb": str(dests[1]), "version": version}
        if args.lintian:
            rc, out = timer("lintian", lintian, *dests)
            summary["lintian"] = {"status": rc, "output": out}
        summary["steps"] = timer.steps
        print(json.dumps(summary, indent=2))
        return 1 if args.lintian and summary["lintian"]["status"] else 0
    finally:
        if args.keep_build:
            print(f"build tree kept in {build_dir}", file=sys.stderr)
        else:
            shutil.rmtree(build_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
