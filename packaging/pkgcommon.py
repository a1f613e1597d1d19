# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers shared by the packaging scripts: paths, the version, commands, timing."""

import fcntl
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KMOD_SRC = REPO / "kmod-src"
TOOLS_SRC = REPO / "tools" / "vhostblk"
FILES = Path(__file__).resolve().parent / "files"
CACHE = Path(os.environ.get("VHOSTBLK_CACHE", "/var/cache/vhostblk-fleet"))
# What must survive a cache cleaner (the repository signing key): /var/lib, never /var/cache.
STATE = Path(os.environ.get("VHOSTBLK_STATE", "/var/lib/vhostblk-fleet"))

SOURCE_NAME = "vhost-blk"          # DKMS PACKAGE_NAME and /usr/src/<name>-<version>
DKMS_PACKAGE = "vhost-blk-dkms"
TOOLS_PACKAGE = "vhost-blk-tools"
MODULES_PREFIX = "vhost-blk-modules"  # vhost-blk-modules-<kernel release>
MODULE_NAME = "vhost_blk"

# Files of kmod-src/ that make up the module source (the rest is docs or build output).
MODULE_SOURCE_GLOBS = ("*.c", "*.h", "Kbuild", "Makefile", "VERSION")
UAPI_HEADER = Path("include/uapi/linux/vhost_blk.h")

# What a module package ships beside the module (both the DKMS and the prebuilt packages).
UDEV_RULE = FILES / "vhost-blk.rules"
MODULES_LOAD = FILES / "vhost-blk-modules-load.conf"

VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~]*$")


def module_version(src=KMOD_SRC):
    """The one version of the module, from kmod-src/VERSION."""
    text = (Path(src) / "VERSION").read_text().strip()
    if not VERSION_RE.match(text):
        raise SystemExit(f"{src}/VERSION: {text!r} is not a usable Debian native version")
    return text


def device_files(package):
    """{path in the package: source file} of the udev rule and the modules-load.d entry.

    Named after the package: vhost-blk-dkms and any number of vhost-blk-modules-<krel> may be
    installed together, and dpkg refuses two packages owning one path.
    """
    return {f"lib/udev/rules.d/60-{package}.rules": UDEV_RULE,
            f"usr/lib/modules-load.d/{package}.conf": MODULES_LOAD}


def maintainer():
    name = os.environ.get("DEBFULLNAME", "vhost-blk fleet maintainers")
    mail = os.environ.get("DEBEMAIL", "vhostblk-fleet@example.org")
    return f"{name} <{mail}>"


def source_date_epoch():
    """Build timestamp: $SOURCE_DATE_EPOCH, else the last commit touching the module or packaging."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct", "--",
                              "kmod-src", "tools/vhostblk", "packaging"],
                             capture_output=True, text=True, check=True).stdout.strip()
        if out:
            return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    return int(time.time())


def rfc2822(epoch):
    """Date as debian/changelog and Release files want it (C locale names, +0000)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))


def run(cmd, **kwargs):
    """Run a command, echoing it; raise SystemExit with its output on failure."""
    cmd = [str(c) for c in cmd]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    kwargs["check"] = False
    res = subprocess.run(cmd, **kwargs)  # pylint: disable=subprocess-run-check
    if res.returncode:
        detail = ""
        for stream in (res.stdout, res.stderr) if kwargs.get("capture_output") else ():
            if stream:
                detail += stream if isinstance(stream, str) else stream.decode(errors="replace")
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{detail[-4000:]}")
    return res


def copy_module_source(dest, src=KMOD_SRC):
    """Copy the module's source files (not build output, not dkms.conf.in) to dest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for pattern in MODULE_SOURCE_GLOBS:
        for f in sorted(Path(src).glob(pattern)):
            if f.is_file():
                shutil.copy2(f, dest / f.name)
                copied.append(f.name)
    header = Path(src) / UAPI_HEADER
    if not header.is_file():
        raise SystemExit(f"missing ABI header {header}")
    (dest / UAPI_HEADER).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(header, dest / UAPI_HEADER)
    copied.append(str(UAPI_HEADER))
    return copied


def copy_exerciser(dest, src=TOOLS_SRC):
    """Copy the exerciser package's Python files (no caches) to dest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for f in sorted(Path(src).glob("*.py")):
        shutil.copy2(f, dest / f.name)
        names.append(f.name)
    if "__main__.py" not in names:
        raise SystemExit(f"{src}: no __main__.py, not the exerciser package")
    return names


def fill_template(text, **values):
    """Replace @KEY@ placeholders; fail on any left over."""
    for key, val in values.items():
        text = text.replace(f"@{key}@", str(val))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SystemExit(f"unfilled template placeholders: {sorted(set(left))}")
    return text


def gzip_file(src, dest, mtime=0):
    """Deterministic gzip -9n of src into dest."""
    with open(src, "rb") as fin, open(dest, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=mtime) as gz:
            shutil.copyfileobj(fin, gz)


def file_hashes(path):
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
            sha256.update(block)
    return {"size": os.path.getsize(path), "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


class Timer:
    """Times named steps; summary() is a list of {step, seconds}."""

    def __init__(self):
        self.steps = []

    def __call__(self, name, func, *args, **kwargs):
        t0 = time.monotonic()
        try:
            return func(*args, **kwargs)
        finally:
            secs = round(time.monotonic() - t0, 1)
            self.steps.append({"step": name, "seconds": secs})
            print(f"[time] {name}: {secs} s", file=sys.stderr, flush=True)

    def total(self):
        return round(sum(s["seconds"] for s in self.steps), 1)


@contextmanager
def locked(lockfile):
    """Hold an exclusive lock on ``lockfile`` (created as needed) for the ``with`` block.

    Every writer of a cache entry takes it: two runs on one machine then wait for each other
    instead of extracting into, building in or pruning the tree the other one is using.
    """
    lockfile = Path(lockfile)
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    with open(lockfile, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
