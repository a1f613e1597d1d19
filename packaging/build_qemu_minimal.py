#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build just qemu-system-x86_64 from Debian's QEMU source with our vhost-blk series.

    python3 packaging/build_qemu_minimal.py [--qemu 7.2]

The fast path for tests on a cold machine: the same patched source as the Debian package
(build_qemu.py --prepare-only: Debian's quilt series, then ours), configured for the x86_64
system emulator only and built with ccache (about 2-3 minutes on 2 idle cores, seconds when
cached). The binary runs on a Debian host that has the distribution's qemu-system-x86
installed (same libraries; firmware from /usr/share/qemu via -L). Cached in
$VHOSTBLK_CACHE/qemu-minimal/<key>, the key hashing the patch series and the source spec.
Prints a JSON summary with the binary path.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pkgcommon

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("VHOSTBLK_CACHE", "/var/cache/vhostblk-fleet"))
# Every optional feature off except what the tests need, so the binary links only against
# libraries that the distribution's qemu-system-x86 package already pulls in (a build host with
# QEMU's full build-deps would otherwise link Xen, SPICE, ... that a hypervisor may lack).
# vhost-user: the guest benchmark puts a vhost-user-blk-pci disk (vhost-blk-user) beside vhost-blk-pci.
CONFIGURE = ["--target-list=x86_64-softmmu", "--without-default-features", "--enable-kvm", "--enable-vhost-kernel",
             "--enable-vhost-net", "--enable-vhost-user", "--enable-linux-aio", "--enable-linux-io-uring",
             "--enable-slirp", "--enable-fdt=system", "--disable-install-blobs", "--with-git-submodules=ignore",
             "--disable-werror"]


def series_key(version: str) -> str:
    h = hashlib.sha256((version + " ".join(CONFIGURE)).encode())
    for f in sorted((REPO / "qemu-patches" / version).iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update((HERE / "build_qemu.py").read_bytes())
    return h.hexdigest()[:16]


def _run(cmd, log, **kw):
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, cmd))}\n")
        out.flush()
        res = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kw)
    if res.returncode != 0:
        tail = Path(log).read_text()[-4000:]
        raise SystemExit(f"{cmd[0]} failed ({res.returncode}); log {log}:\n{tail}")


def build(version: str) -> dict:
    base = CACHE / "qemu-minimal"
    with pkgcommon.locked(base / ".lock"):  # one build at a time: they share base/work
        return _build(version, base)


def _build(version: str, base: Path) -> dict:
    key = series_key(version)
    dest = base / key / "qemu-system-x86_64"
    if dest.exists():
        return {"binary": str(dest), "cached": True, "seconds": 0}
    start = time.monotonic()
    work = base / "work"
    work.mkdir(parents=True, exist_ok=True)
    log = base / f"build-{version}.log"
    log.write_text("")
    res = subprocess.run([sys.executable, str(HERE / "build_qemu.py"), "--qemu", version, "--prepare-only",
                          "--workdir", str(work), "--out", str(work / "out")], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise SystemExit(f"build_qemu.py --prepare-only failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    tree = Path(json.loads(res.stdout[res.stdout.index("{"):])["tree"])
    build_dir = tree / "build-minimal"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir()
    env = {**os.environ, "CCACHE_DIR": str(CACHE / "ccache"), "CC": "ccache cc"}
    _run(["../configure", *CONFIGURE], log, cwd=build_dir, env=env)
    _run(["nice", "-n", "10", "ninja", "-j", str(os.cpu_count() or 2), "qemu-system-x86_64"], log, cwd=build_dir,
         env=env)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build_dir / "qemu-system-x86_64", dest)
    for old in base.iterdir():
        if old.is_dir() and old.name not in (key, "work"):
            shutil.rmtree(old, ignore_errors=True)
    return {"binary": str(dest), "cached": False, "seconds": round(time.monotonic() - start)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    series = sorted(p.name for p in (REPO / "qemu-patches").iterdir() if p.is_dir())
    ap.add_argument("--qemu", default="7.2", choices=series)
    args = ap.parse_args(argv)
    print(json.dumps(build(args.qemu), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
