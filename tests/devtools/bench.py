# SPDX-License-Identifier: GPL-2.0-or-later
"""``./dev bench``: the engine benchmark, /dev/vhost-blk vs fio (io_uring) side by side in one L1.

Boots a throwaway L1, installs the prebuilt module for its kernel from the signed package
repository disk, and runs the exerciser's ``bench`` (4k random read/write, queue depths 1 and 32,
same backing file and runtime for both) which prints IOPS, mean completion latency and the
vhost-blk/fio ratios. Under TCG the absolute numbers are meaningless; the ratios are the point,
and on real hardware run the same ``python3 -m vhostblk bench`` on the hypervisor itself.
"""

import os
import sys
import tempfile
from pathlib import Path

from vmharness.image import build_image
from vmharness.instance import create, destroy
from vmharness.packages import MOUNT, build_repo_image
from vmharness.paths import REPO_ROOT
from vmharness.recipe import get_recipe

TOOLS = "/usr/local/lib/vhostblk-fleet"


def install_module_from_repo(inst) -> None:
    inst.run(f"mkdir -p {MOUNT} && (mountpoint -q {MOUNT} || mount -o ro /dev/vdb {MOUNT}) && "
             f"cp {MOUNT}/vhostblk-local.gpg /usr/share/keyrings/vhostblk-fleet.gpg && "
             f"echo 'deb [signed-by=/usr/share/keyrings/vhostblk-fleet.gpg] file:{MOUNT} bookworm main' "
             "> /etc/apt/sources.list.d/vhostblk-fleet.list && "
             "apt-get update -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/vhostblk-fleet.list "
             "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >/dev/null && "
             "DEBIAN_FRONTEND=noninteractive apt-get install -y -q vhost-blk-modules-$(uname -r) >/dev/null && "
             "modprobe vhost_blk", timeout=900)


def run(args) -> int:
    recipe = get_recipe("debian12")
    image = build_image(recipe)
    inst = None
    with tempfile.TemporaryDirectory(prefix="vhostblk-bench-") as tmp:
        repo_img = Path(tmp) / "repo.img"
        build_repo_image(recipe, image, repo_img)
        try:
            inst = create(f"bench-{os.getpid()}", owner=os.getpid(), extra_disks=[repo_img],
                          log=lambda m: print(f"[bench] {m}", flush=True))
            install_module_from_repo(inst)
            inst.run(f"mkdir -p {TOOLS}")
            inst.put([REPO_ROOT / "tools" / "vhostblk"], TOOLS + "/")
            inst.put([REPO_ROOT / "kmod-src" / "include" / "uapi" / "linux" / "vhost_blk.h"], TOOLS + "/")
            extra = " ".join(args) if args else "--qd 1,32 --runtime 10"
            res = inst.run(f"truncate -s 1G /var/tmp/bench.img && PYTHONPATH={TOOLS} "
                           f"VHOST_BLK_UAPI_HEADER={TOOLS}/vhost_blk.h python3 -m vhostblk bench "
                           f"--file /var/tmp/bench.img {extra}", check=False, timeout=3600)
            print(res.stdout)
            print(res.stderr, file=sys.stderr)
            return res.returncode
        finally:
            if inst is not None:
                destroy(inst.dir)
