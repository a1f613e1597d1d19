# SPDX-License-Identifier: GPL-2.0-or-later
"""Debian packages the host needs, and the apt sources they come from.

Idempotent and quick when everything is already there: it only calls apt-get when a package
is missing, so a warm ``./dev test`` spends no time here.
"""

import os
import re
import subprocess
from pathlib import Path

SOURCES_FILE = Path("/etc/apt/sources.list.d/vhostblk-fleet.sources")
PIN_FILE = Path("/etc/apt/preferences.d/vhostblk-fleet")

# bookworm-backports gives the 6.12 headers (same kernel API as Debian 13) for compile checks,
# trixie gives virtme-ng for kernel developers; deb-src gives the QEMU sources we patch. trixie stays pinned low so
# nothing is upgraded from it by accident.
SOURCES = """Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

PIN = """Package: *
Pin: release n=trixie
Pin-Priority: 100
"""

PACKAGES = (
    # test hypervisor
    "qemu-system-x86", "qemu-utils", "mmdebstrap", "busybox-static", "cpio", "openssh-client", "e2fsprogs",
    "zstd",
    # host tests: the exerciser's bench (fio), module signing checks (openssl, kmod's modinfo)
    "fio", "openssl", "kmod",
    # kernel module compile checks and packaging
    "build-essential", "dkms", "dh-dkms", "debhelper", "dpkg-dev", "fakeroot", "lintian", "quilt", "devscripts",
    "linux-headers-amd64", "sparse",
    # the signed apt repository and its tests (gpg signs, gpgv and apt check)
    "gnupg", "gpgv", "apt",
    # the disk module against real libvirt (embedded QEMU driver) and libvirt's own XML schema
    "python3-libvirt", "libvirt-daemon-driver-qemu", "libvirt-clients", "libxml2-utils",
    # QEMU builds
    "ninja-build", "meson", "libglib2.0-dev", "libpixman-1-dev", "libfdt-dev", "zlib1g-dev", "libaio-dev",
    "liburing-dev", "libslirp-dev", "flex", "bison", "ccache", "pkgconf",
)

APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]


def _installed(packages) -> set:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages],
                         capture_output=True, text=True, check=False)
    return {line.split()[0] for line in res.stdout.splitlines() if line.split()[1:2] == ["ii"]}


def _configure_sources() -> bool:
    changed = False
    for path, text in ((SOURCES_FILE, SOURCES), (PIN_FILE, PIN)):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed = True
    return changed


def backports_headers_package() -> str:
    """The concrete 6.12 headers package that bookworm-backports' linux-headers-amd64 points at."""
    out = subprocess.run(["apt-cache", "show", "linux-headers-amd64"], capture_output=True, text=True,
                         check=False).stdout
    names = re.findall(r"^Depends: (linux-headers-6\.12\.[^\s,]+-amd64)", out, re.M)
    bpo = [n for n in names if "+deb12" in n or "bpo" in n]
    if not bpo:
        raise RuntimeError("cannot find bookworm-backports 6.12 headers (apt-cache show linux-headers-amd64)")
    return sorted(bpo)[-1]


def ensure(log=print) -> None:
    lists_stale = _configure_sources() or not any(Path("/var/lib/apt/lists").glob("*backports*Packages*"))
    if lists_stale:
        log("host: apt-get update")
        subprocess.run([*APT, "update"], check=True, env=APT_ENV, stdout=subprocess.DEVNULL)
    wanted = list(PACKAGES)
    missing = [p for p in wanted if p not in _installed(wanted)]
    try:
        bpo = backports_headers_package()
    except RuntimeError:
        subprocess.run([*APT, "update"], check=True, env=APT_ENV, stdout=subprocess.DEVNULL)
        bpo = backports_headers_package()
    extra = [p for p in (bpo,) if p not in _installed([bpo])]
    if missing or extra:
        log(f"host: installing {' '.join(missing + extra)}")
        subprocess.run([*APT, "install", "--no-install-recommends", *missing, *extra], check=True, env=APT_ENV)
