# SPDX-License-Identifier: GPL-2.0-or-later
"""vhost-blk-user (tools/vhostblk/vu_daemon.py) in L1, straight from the repository: no package.

Used by the L2 tests and the guest benchmark to put a vhost-user-blk-pci disk in front of the
module with the QEMU in L1.
"""

from .paths import REPO_ROOT

TOOLS = "/usr/local/lib/vhostblk-fleet"
HEADER = REPO_ROOT / "kmod-src" / "include" / "uapi" / "linux" / "vhost_blk.h"


def install(inst) -> None:
    """Copy the exerciser package (the daemon) and the uapi header into L1."""
    inst.run(f"mkdir -p {TOOLS} /run/vhost-blk /var/lib/vhost-blk")
    inst.put([REPO_ROOT / "tools" / "vhostblk"], TOOLS + "/")
    inst.put([HEADER], TOOLS + "/")


def daemon_command(log: str, sock: str, backing: str, args: str = "") -> str:
    """Shell starting the daemon as the only background job (so an ssh session can end); prints its pid."""
    return (f"cd {TOOLS}; VHOST_BLK_UAPI_HEADER={TOOLS}/vhost_blk.h setsid python3 -m vhostblk.vu_daemon "
            f"--socket {sock} --backing {backing} {args} </dev/null >{log} 2>&1 & echo $!")


def wait_socket(sock: str) -> str:
    """Shell waiting up to 10 s for the daemon's socket (it appears once the daemon listens)."""
    return f"for i in $(seq 100); do test -S {sock} && break; sleep 0.1; done"


def start(inst, log: str, sock: str, backing: str, args: str = "") -> str:
    """Start the daemon in L1, wait for its socket; its pid. Its log is shown when it does not listen."""
    pid = inst.run(daemon_command(log, sock, backing, args)).stdout.strip()
    inst.run(f"{wait_socket(sock)}; test -S {sock} || {{ cat {log}; exit 1; }}")
    return pid
