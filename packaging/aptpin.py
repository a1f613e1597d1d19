# SPDX-License-Identifier: GPL-2.0-or-later
"""apt preferences for the patched QEMU builds (+vhostblkN): our repository at Debian's priority.

The pin is by origin (the Origin field aptrepo.py writes into every Release, which works for
file:, http: and https: sources alike) and gives our repository priority 500, the priority apt
gives Debian's bookworm, -updates and -security suites. At equal priority apt takes the highest
version, so:

* our build of a Debian version wins over that version: `1:7.2+dfsg-7+deb12u18+vhostblk3`
  sorts above Debian's `1:7.2+dfsg-7+deb12u18` and its binNMUs (`+b3`);
* Debian's next security or point-release version (`...+deb12u19`) wins over our build, for every
  QEMU package at once, so nothing that depends on the exact `qemu-system-x86` version
  (`qemu-block-extra`, `qemu-system-gui`, ...) is kept back. The vhost-blk-pci device is gone
  from VMs started afterwards until a rebuild is published; `vhostblk.fleet.info` and the qemu
  role report it (qemu.newer_upstream). packaging/README.md: how to rebuild.

Any other number is wrong one way or the other. Above 500 (990, 1001) our installed build beats
a newer Debian version: apt prefers the higher priority whatever the version (1000 and more
also downgrade), so security fixes never arrive. Below 500 Debian's own version of the same
upstream release beats ours. Versions from suites apt ranks lower (backports, another release
at 100) stay below ours as before.

`APT::Default-Release "bookworm"` gives 990 to every suite whose codename is bookworm, ours
included, and leaves bookworm-security at 500: apt then keeps any installed version over a
security update, Debian's own QEMU too. `APT::Default-Release "/^bookworm(-security|-updates)?$/"`
gives all of them 990 and the versions decide again (tests/host/test_aptpin.py has both).

`Package: *` pins every package of our origin, so no package list can disagree with another;
for the module packages, which only our repository has, 500 is apt's default anyway.
"""

from aptrepo import ORIGIN

LOCAL_VERSION_MARK = "+vhostblk"
PIN_PRIORITY = 500
PIN_FILE_NAME = "vhostblk-qemu.pref"


def pinned_packages(entries):
    """Names of the packages in the repository that carry a +vhostblk version."""
    return sorted({e["package"] for e in entries if LOCAL_VERSION_MARK in e["version"]})


def pin_text(origin=ORIGIN):
    """The preferences stanza: every package of our origin at Debian's priority."""
    if not origin or '"' in origin or "\n" in origin:
        raise ValueError(f"origin {origin!r}: a Release Origin value expected")
    return ("Explanation: vhost-blk fleet: the patched QEMU (+vhostblkN) at the priority of Debian's suites,\n"
            "Explanation: so the higher version wins: ours over the Debian version it was built from, a newer\n"
            "Explanation: Debian (security) version over ours. Rebuild then: see packaging/README.md.\n"
            "Package: *\n"
            f"Pin: release o={origin}\n"
            f"Pin-Priority: {PIN_PRIORITY}\n")
