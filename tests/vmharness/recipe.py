# SPDX-License-Identifier: GPL-2.0-or-later
"""Image recipes for the test hypervisor and their cache keys.

A recipe lists everything that decides the image's content. Its cache key is a hash of that
list, so changing a package or a customisation step builds a new image and a second run with
the same recipe reuses the cached one.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Tuple

# Bump when the customisation code in image.py changes what ends up in the image.
CUSTOMIZE_VERSION = 3

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# What every hypervisor image carries so that converge never waits for apt under emulation:
# the kernel with matching headers and DKMS, a compiler, QEMU, libvirt with AppArmor, and the
# tools the tests drive L2 guests with.
HYPERVISOR_PACKAGES = (
    "linux-image-amd64",
    "linux-headers-amd64",
    "initramfs-tools",
    "openssh-server",
    "python3",
    "python3-apt",
    "systemd-sysv",
    "udev",
    "dbus",
    "iproute2",
    "sudo",
    "ca-certificates",
    "kmod",
    "procps",
    "netbase",
    "dkms",
    "build-essential",
    "qemu-system-x86",
    "qemu-utils",
    "fio",
    "busybox-static",
    "cpio",
    "e2fsprogs",
    "util-linux",
    "libvirt-daemon-system",
    "libvirt-clients",
    "python3-libvirt",
    "python3-lxml",
    "apparmor",
    "gnupg",
)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides an image's content."""

    distro: str
    suite: str
    sources: Tuple[str, ...]
    packages: Tuple[str, ...] = HYPERVISOR_PACKAGES
    disk_size: str = "12G"
    customize_version: int = CUSTOMIZE_VERSION
    extra: Tuple[str, ...] = field(default_factory=tuple)

    def key(self) -> str:
        """Stable hash of the recipe: the image cache key."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def name(self) -> str:
        return f"{self.distro}-{self.key()}"


def _sources(suite: str) -> Tuple[str, ...]:
    return (
        f"deb {MIRROR} {suite} main",
        f"deb {MIRROR} {suite}-updates main",
        f"deb {SECURITY_MIRROR} {suite}-security main",
    )


RECIPES = {
    "debian12": Recipe(distro="debian12", suite="bookworm", sources=_sources("bookworm")),
    "debian13": Recipe(distro="debian13", suite="trixie", sources=_sources("trixie")),
}


def get_recipe(distro: str) -> Recipe:
    try:
        return RECIPES[distro]
    except KeyError:
        raise ValueError(f"unknown distro {distro!r}; choose one of {', '.join(sorted(RECIPES))}") from None
