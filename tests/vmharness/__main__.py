# SPDX-License-Identifier: GPL-2.0-or-later
"""Command line: ``PYTHONPATH=tests python -m vmharness {image,create,reboot,destroy,ssh,list,sweep,udp-ports}``."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from . import HarnessError
from .image import build_image
from .instance import Instance, create, destroy
from .packages import build_repo_image
from .paths import state_dir
from .qemu import PeerLink, free_udp_ports
from .reboot import reboot
from .recipe import RECIPES, get_recipe
from .ssh import ssh_command


def _base(args) -> Path:
    return Path(args.base) if args.base else state_dir() / "instances"


def _existing(base: Path, name: str) -> Instance:
    inst = Instance(base / name)
    if not (inst.dir / "state.json").exists():
        raise HarnessError(f"no instance {name!r} under {base} (see 'list')")
    return inst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vmharness", description="vhost-blk fleet test hypervisor (L1) harness")
    parser.add_argument("--base", help="directory holding instance directories (default: $VHOSTBLK_STATE/instances)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("image", help="build the cached L1 image if needed and print its directory")
    p.add_argument("--distro", default="debian12", choices=sorted(RECIPES))
    p = sub.add_parser("repo-image", help="build the vhost-blk package repository disk for an image's kernel")
    p.add_argument("--distro", default="debian12", choices=sorted(RECIPES))
    p.add_argument("--out", required=True, help="where to write the ext4 repository image")
    p = sub.add_parser("create", help="boot a throwaway L1 and print its connection facts as JSON")
    p.add_argument("name")
    p.add_argument("--distro", default="debian12", choices=sorted(RECIPES))
    p.add_argument("--owner-pid", type=int, help="stop the VM when this process ends (default $VHOSTBLK_OWNER_PID)")
    p.add_argument("--extra-disk", action="append", default=[], help="read-only extra disk for L1 (repeatable)")
    p.add_argument("--memory", type=int, default=4096, help="L1 memory in MiB")
    p.add_argument("--keep-logs-in", help="copy serial/qemu logs here when the VM stops")
    p.add_argument("--peer-link", metavar="LOCAL:REMOTE",
                   help="second NIC on a UDP link to another L1 (its --peer-link is REMOTE:LOCAL); needs --peer-mac")
    p.add_argument("--peer-mac", help="MAC address of the peer-link NIC (L1 configures its address by it)")
    p.add_argument("--shared-disk", action="append", default=[],
                   help="raw image this L1 writes together with others (repeatable): /dev/disk/by-id/virtio-"
                        "vhostblk-sharedN in L1")
    p = sub.add_parser("udp-ports", help="print COUNT free UDP ports on 127.0.0.1 as a JSON list (for --peer-link)")
    p.add_argument("--count", type=int, default=2)
    p = sub.add_parser("reboot", help="reboot an L1 into the kernel its disk boots by default (/vmlinuz)")
    p.add_argument("name")
    p = sub.add_parser("destroy", help="stop an L1 and delete its overlay")
    p.add_argument("name")
    p = sub.add_parser("ssh", help="run a command in L1 (interactive shell without one)")
    p.add_argument("name")
    p.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("list", help="list instances")
    sub.add_parser("sweep", help="destroy every instance under --base")
    args = parser.parse_args(argv)
    base = _base(args)
    try:
        if args.cmd == "image":
            print(build_image(get_recipe(args.distro), log=lambda m: print(m, file=sys.stderr)).path)
        elif args.cmd == "repo-image":
            recipe = get_recipe(args.distro)
            image = build_image(recipe, log=lambda m: print(m, file=sys.stderr))
            print(build_repo_image(recipe, image, Path(args.out)))
        elif args.cmd == "create":
            if bool(args.peer_link) != bool(args.peer_mac):
                raise HarnessError("--peer-link and --peer-mac go together")
            inst = create(args.name, distro=args.distro, base=base, owner=args.owner_pid,
                          extra_disks=[Path(d) for d in args.extra_disk], memory_mib=args.memory,
                          keep_logs_in=Path(args.keep_logs_in) if args.keep_logs_in else None,
                          peer_link=PeerLink.parse(args.peer_link, args.peer_mac) if args.peer_link else None,
                          shared_disks=[Path(d) for d in args.shared_disk],
                          log=lambda m: print(m, file=sys.stderr))
            print(json.dumps({"instance": args.name, "dir": str(inst.dir), **inst.ansible_host_vars()}))
        elif args.cmd == "reboot":
            inst = _existing(base, args.name)
            release = reboot(inst, log=lambda m: print(m, file=sys.stderr))
            print(json.dumps({"instance": args.name, "kernel_release": release}))
        elif args.cmd == "destroy":
            destroy(base / args.name)
        elif args.cmd == "ssh":
            inst = _existing(base, args.name)
            cmd = ssh_command(inst.port, inst.key, " ".join(args.command))
            if not args.command:  # interactive: no remote command, allow a tty
                cmd = cmd[:-1]
                i = cmd.index("BatchMode=yes")
                del cmd[i - 1:i + 1]
            os.execvp(cmd[0], cmd)
        elif args.cmd == "list":
            for d in sorted(base.glob("*/state.json")):
                inst = Instance(d.parent)
                print(f"{inst.name}\tport {inst.port}\t{'running' if inst.qemu_alive() else 'stopped'}")
        elif args.cmd == "udp-ports":
            if not 1 <= args.count <= 16:
                raise HarnessError(f"--count {args.count}: 1 to 16")
            print(json.dumps(free_udp_ports(args.count)))
        elif args.cmd == "sweep":
            for d in sorted(base.glob("*/state.json")):
                destroy(d.parent)
    except (HarnessError, subprocess.CalledProcessError, ValueError) as exc:
        print(f"vmharness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
