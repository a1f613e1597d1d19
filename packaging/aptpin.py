# SPDX-License-Identifier: GPL-2.0-or-later
"""apt preferences that keep our patched QEMU builds (+vhostblkN versions) installed.

Priority 1001 (> 1000) means apt installs the pinned version even when a repository offers
a higher one, and would even downgrade to it: a Debian security update of QEMU then cannot
silently replace the vhost-blk-enabled build. The price: such an update is only installed
after we rebuild QEMU with it (build_qemu.py) and publish +vhostblkN of the new version;
`apt-cache policy qemu-system-x86` shows when Debian's candidate is newer than ours.
"""

LOCAL_VERSION_MARK = "+vhostblk"
PIN_PRIORITY = 1001
# A regular expression, not a glob: apt strips a trailing '*' of a version pin and treats the
# rest as a prefix, so "*+vhostblk*" would never match.
PIN_VERSION_REGEX = r"/\+vhostblk[0-9]+$/"
PIN_FILE_NAME = "vhostblk-qemu.pref"
# The binary packages build_qemu.py produces for a host (x86 profile); others are pinned when present.
DEFAULT_QEMU_PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data", "qemu-system-gui",
                         "qemu-block-extra", "qemu-utils", "qemu-system", "qemu-guest-agent")


def pinned_packages(entries):
    """Names of the packages in the repository that carry a +vhostblk version."""
    return sorted({e["package"] for e in entries if LOCAL_VERSION_MARK in e["version"]})


def pin_text(packages=DEFAULT_QEMU_PACKAGES):
    """One preferences stanza pinning every +vhostblk version of the given packages at 1001."""
    if not packages:
        raise ValueError("no packages to pin")
    return (f"Explanation: vhost-blk fleet: keep the patched QEMU ({LOCAL_VERSION_MARK}N) even when a\n"
            "Explanation: newer distribution version exists; rebuild with packaging/build_qemu.py.\n"
            f"Package: {' '.join(packages)}\n"
            f"Pin: version {PIN_VERSION_REGEX}\n"
            f"Pin-Priority: {PIN_PRIORITY}\n")
