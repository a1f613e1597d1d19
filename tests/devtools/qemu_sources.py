# SPDX-License-Identifier: GPL-2.0-or-later
"""Debian's qemu source trees (Debian's own quilt series applied), fetched once and cached.

    <cache>/qemu-src/<debian version>/src/qemu-<upstream>/   the tree, as `apt-get source` leaves it
    <cache>/qemu-src/<debian version>/source.json            written last: the tree is complete

The fetch itself is packaging/build_qemu.py's (``fetch_source``: ``apt-get source``, which lets
dpkg-source apply debian/patches). The Debian version comes from ``apt-get source --print-uris``
(local apt lists only, no network; about 5 s, so its answer is kept in <cache>/qemu-src/versions.json
until `apt-get update` changes the source lists): a warm look-up costs milliseconds. When Debian
publishes a new revision, the next look-up after `apt-get update` fetches it and drops the older tree.
"""

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APT_LISTS = "/var/lib/apt/lists"


def _build_qemu():
    """packaging/build_qemu.py as a module (packaging/ holds scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("build_qemu", REPO / "packaging" / "build_qemu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BUILD_QEMU = _build_qemu()


def cache_root() -> Path:
    return BUILD_QEMU.CACHE / "qemu-src"


def _lists_fingerprint() -> str:
    """Changes whenever `apt-get update` brings new source lists."""
    lists = sorted(Path(APT_LISTS).glob("*_Sources*"))
    return hashlib.sha256(repr([(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in lists]).encode()).hexdigest()


def _query_versions() -> dict:
    """qemu-patches version -> Debian version (without epoch) `apt-get source` would fetch now."""
    specs = [BUILD_QEMU.SOURCES[q] for q in sorted(BUILD_QEMU.SOURCES)]
    res = subprocess.run(["apt-get", "source", "--print-uris", "--only-source", *specs],
                         capture_output=True, text=True, check=False)
    dscs = re.findall(r"^'[^']+' [^_\s]+_(\S+)\.dsc ", res.stdout, re.M)
    versions = {}
    for qemu in BUILD_QEMU.SOURCES:
        found = [v for v in dscs if v.startswith(qemu + ".") or v.startswith(qemu + "+")]
        if res.returncode != 0 or len(found) != 1:
            raise RuntimeError(f"apt-get source --print-uris {' '.join(specs)} gave no single {qemu} source package "
                               "(are the deb-src lines of ./dev setup in place and `apt-get update` done?):\n"
                               f"{res.stdout[-1500:]}{res.stderr[-1500:]}")
        versions[qemu] = found[0]
    return versions


def debian_version(qemu: str) -> str:
    """Debian version of the source behind qemu-patches/<qemu>: asks apt (~5 s) only when its lists changed."""
    record = cache_root() / "versions.json"
    fingerprint = _lists_fingerprint()
    known = json.loads(record.read_text()) if record.is_file() else {}
    if known.get("lists") != fingerprint or qemu not in known.get("versions", {}):
        known = {"lists": fingerprint, "versions": _query_versions()}
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1) + "\n")
        tmp.replace(record)
    return known["versions"][qemu]


def _ready(workdir: Path):
    marker = workdir / "source.json"
    if not marker.is_file():
        return None
    tree = Path(json.loads(marker.read_text())["tree"])
    return tree if (tree / "debian" / "patches" / "series").is_file() else None


def _drop_other_versions(spec: str, keep: Path) -> None:
    for old in cache_root().iterdir():
        marker = old / "source.json"
        if old != keep and marker.is_file() and json.loads(marker.read_text()).get("spec") == spec:
            shutil.rmtree(old, ignore_errors=True)


def source_tree(qemu: str) -> Path:
    """The extracted Debian source tree behind qemu-patches/<qemu> (e.g. "7.2": qemu/bookworm)."""
    spec = BUILD_QEMU.SOURCES[qemu]
    version = debian_version(qemu)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / version
    with open(root / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions fetching at once wait for each other
        tree = _ready(workdir)
        if tree is not None:
            return tree
        workdir.mkdir(exist_ok=True)
        log = workdir / "fetch.log"
        log.write_text("")
        try:
            tree = BUILD_QEMU.fetch_source(spec, workdir, log)
        except SystemExit as exc:  # build_qemu.sh() reports failures as SystemExit + log tail
            raise RuntimeError(f"cannot fetch the Debian source {spec} ({version}): {exc}") from None
        if not (tree / ".pc" / "applied-patches").is_file():
            raise RuntimeError(f"{tree}: dpkg-source did not apply Debian's quilt series (no .pc/applied-patches)")
        (workdir / "source.json").write_text(json.dumps({"spec": spec, "version": version, "tree": str(tree)}) + "\n")
    _drop_other_versions(spec, workdir)
    return tree
