# SPDX-License-Identifier: GPL-2.0-or-later
"""The bench's C driver (cbench/vblk_bench.c): compiled on this host into a cache, then run.

The Python driver's own time per request hides the module's latency at low queue depth; the C
driver plays the same VMM (one memfd of guest RAM, the same ioctls and ring layout) at the cost
of a few hundred nanoseconds per request.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "cbench" / "vblk_bench.c"
CFLAGS = ("-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror")


class CDriverUnavailable(Exception):
    """No C compiler or no source here (the bench then measures the Python driver only)."""


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vhostblk-bench"


def build(header, cc=None, cache=None):
    """Path of vblk_bench compiled against ``header`` (our uapi vhost_blk.h), built once per
    source, header and compiler. Raises CDriverUnavailable or RuntimeError (compile error)."""
    cc = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc or not shutil.which(cc):
        raise CDriverUnavailable("no C compiler (apt-get install gcc, or set $CC)")
    if not SOURCE.is_file():
        raise CDriverUnavailable(f"{SOURCE} is not installed here")
    src, hdr = SOURCE.read_bytes(), Path(header).read_bytes()
    key = hashlib.sha256(src + b"\0" + hdr + b"\0" + cc.encode() + b"\0" + " ".join(CFLAGS).encode())
    out = Path(cache or cache_root()) / key.hexdigest()[:16]
    exe = out / "vblk_bench"
    if exe.is_file():
        return exe
    (out / "include" / "linux").mkdir(parents=True, exist_ok=True)
    (out / "include" / "linux" / "vhost_blk.h").write_bytes(hdr)
    fd, tmp = tempfile.mkstemp(prefix="vblk_bench.", dir=out)
    os.close(fd)
    p = subprocess.run([cc, *CFLAGS, "-I", str(out / "include"), "-o", tmp, str(SOURCE)],
                       capture_output=True, text=True, timeout=300, check=False)
    if p.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"{cc} {SOURCE.name} failed: {p.stderr.strip()[-1500:]}")
    os.replace(tmp, exe)
    return exe


def run(exe, device, path, rw, qd, runtime, timeout, seed, busyloop_us, buffered):
    """One closed-loop run; its JSON line as a dict. RuntimeError names what failed."""
    cmd = [str(exe), "--device", device, "--file", path, "--rw", rw, "--qd", str(qd),
           "--runtime", str(runtime), "--timeout", str(timeout), "--seed", str(seed),
           "--busyloop-us", str(busyloop_us)] + (["--buffered"] if buffered else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=runtime + 2 * timeout + 60,
                       check=False)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip()[-500:] or f"vblk_bench exited {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])
