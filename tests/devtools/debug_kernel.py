# SPDX-License-Identifier: GPL-2.0-or-later
"""A debug kernel (KASAN, lockdep, kmemleak) built once from Debian's linux source, cached.

    <cache>/debug-kernel/<debian version>-<config hash>/linux-source-<series>/   the built tree
    <cache>/debug-kernel/<key>/kernel.json                                      written last

The config is virtme-ng's minimal one (``vng --kconfig``) with debug_kernel.config appended, so
``vng --run <tree>`` boots it on the host's own files; modules build against the tree
(``make -C <tree> M=...``). The build takes 40-70 minutes on 2 cores (``nice -n 15``); each stage
leaves a marker, so an interrupted build resumes where it stopped. Two sessions wait for each other
(one lock per key); a new Debian revision or a changed config fragment is a new key.
"""

import fcntl
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from vmharness.paths import cache_dir

SERIES = "6.12"
PACKAGE = f"linux-source-{SERIES}"
FRAGMENT = Path(__file__).with_name("debug_kernel.config")
# bump when the steps below change what gets built
RECIPE = "vng --kconfig; append fragment; make olddefconfig; make -j$(nproc) (bzImage + modules)"


def cache_root() -> Path:
    return cache_dir() / "debug-kernel"


def debian_version() -> str:
    """Version of ``linux-source-<SERIES>`` apt would fetch now (local lists only)."""
    res = subprocess.run(["apt-cache", "show", "--no-all-versions", PACKAGE],
                         capture_output=True, text=True, check=False)
    m = re.search(r"^Version: (\S+)$", res.stdout, re.M)
    if res.returncode != 0 or not m:
        raise RuntimeError(f"apt-cache show {PACKAGE} found no candidate (is bookworm-security or "
                           f"bookworm-backports in the apt sources and `apt-get update` done?): "
                           f"{res.stderr.strip()[-500:]}")
    return m.group(1)


def key(version: str) -> str:
    digest = hashlib.sha256(FRAGMENT.read_bytes() + RECIPE.encode()).hexdigest()[:12]
    return f"{version}-{digest}"


def _run(argv, cwd, log, nice=False):
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, argv))}\n")
        out.flush()
        res = subprocess.run(["nice", "-n", "15", *argv] if nice else argv, cwd=cwd, stdout=out,
                             stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        tail = Path(log).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(map(str, argv))} failed in {cwd} (rc {res.returncode}), log {log}:\n{tail}")


def _extract(workdir: Path, version: str, log: Path) -> Path:
    tree = workdir / PACKAGE
    if (workdir / "extracted").is_file():
        return tree
    _run(["apt-get", "download", f"{PACKAGE}={version}"], workdir, log)
    deb = next(workdir.glob(f"{PACKAGE}_*.deb"))
    _run(["dpkg-deb", "-x", deb.name, "pkg"], workdir, log)
    _run(["tar", "-xf", f"pkg/usr/src/{PACKAGE}.tar.xz"], workdir, log)
    subprocess.run(["rm", "-rf", str(workdir / "pkg"), str(deb)], check=True)
    (workdir / "extracted").write_text(version + "\n")
    return tree


def _configure(workdir: Path, tree: Path, log: Path) -> None:
    if (workdir / "configured").is_file():
        return
    _run(["vng", "--kconfig"], tree, log, nice=True)
    with open(tree / ".config", "a") as cfg:
        cfg.write(FRAGMENT.read_text())
    _run(["make", "olddefconfig"], tree, log, nice=True)
    config = (tree / ".config").read_text()
    missing = [line for line in FRAGMENT.read_text().splitlines()
               if line.endswith("=y") and f"\n{line}\n" not in f"\n{config}"]
    if missing:
        raise RuntimeError(f"{tree}/.config lacks {missing} after olddefconfig (a dependency is off)")
    (workdir / "configured").write_text("")


def ensure(log=print) -> Path:
    """The built debug kernel tree (``arch/x86/boot/bzImage`` in it), building it when missing."""
    version = debian_version()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / key(version)
    marker = workdir / "kernel.json"
    with open(root / f".{workdir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions building at once wait for each other
        if marker.is_file():
            return Path(json.loads(marker.read_text())["tree"])
        workdir.mkdir(exist_ok=True)
        build_log = workdir / "build.log"
        log(f"debug kernel {workdir.name}: building (40-70 minutes on 2 cores), log {build_log}")
        tree = _extract(workdir, version, build_log)
        _configure(workdir, tree, build_log)
        _run(["make", f"-j{os.cpu_count() or 1}"], tree, build_log, nice=True)
        release = (tree / "include/config/kernel.release").read_text().strip()
        marker.write_text(json.dumps({"package": PACKAGE, "version": version, "release": release,
                                      "tree": str(tree)}) + "\n")
        return tree
