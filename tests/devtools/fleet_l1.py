# SPDX-License-Identifier: GPL-2.0-or-later
"""A throwaway hypervisor VM (L1) that the collection's playbooks run against, as on a fleet.

``./dev demo`` and ``./dev bench fleet`` use it: the L1 gets the signed vhost-blk package
repository as a read-only disk (built or reused from the cache first), exactly as a fleet host
gets it from the build host's repository, and an inventory with that one host in ``hypervisors``.
"""

import contextlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from . import venv

PLAYBOOKS = venv.ROOT / "playbooks"


class FleetL1:
    """One L1 and the extra vars every playbook run against it needs."""

    def __init__(self, inst, inventory: Path, extra_vars: dict, log):
        self.inst = inst
        self.inventory = inventory
        self.extra_vars = extra_vars
        self.log = log

    def playbook(self, name: str, more: dict | None = None, args=()) -> int:
        """Run playbooks/NAME against the L1; its output goes to the terminal. Returns the exit code."""
        self.log(f"running playbooks/{name} against L1 {self.inst.name}")
        res = subprocess.run([str(venv.bin_path("ansible-playbook")), "-i", str(self.inventory),
                              "-e", json.dumps({**self.extra_vars, **(more or {})}), str(PLAYBOOKS / name), *args],
                             env=venv.env(), check=False)
        return res.returncode


@contextlib.contextmanager
def fleet_l1(prefix: str, log):
    """Boot the L1 with the repository disk; destroy it however the block ends."""
    from vmharness.image import build_image
    from vmharness.instance import create, destroy
    from vmharness.packages import MOUNT, build_repo_image
    from vmharness.recipe import get_recipe

    name = f"{prefix}-{os.getpid()}"
    inst = None
    try:
        with tempfile.TemporaryDirectory(prefix=f"vhostblk-{prefix}-") as tmp:
            recipe = get_recipe("debian12")
            image = build_image(recipe, log=log)
            repo_img = Path(tmp) / "repo.img"
            log("building (or reusing) the vhost-blk packages and their signed repository")
            build_repo_image(recipe, image, repo_img)
            inst = create(name, owner=os.getpid(), extra_disks=[repo_img], log=log)
            inst.run(f"mkdir -p {MOUNT} && mount -o ro /dev/vdb {MOUNT}")
            has_qemu = inst.run(f"test -e {MOUNT}/vhostblk-qemu.pref", check=False).returncode == 0
            if not has_qemu:
                log("the repository has no patched QEMU (packaging/build_qemu.py): Debian's QEMU serves the guest "
                    "through vhost-user, the default transport")
            inventory = Path(tmp) / "inventory.ini"
            hostvars = " ".join(f"{k}='{v}'" for k, v in inst.ansible_host_vars().items())
            inventory.write_text(f"[hypervisors]\nl1-{prefix} {hostvars}\n")
            yield FleetL1(inst, inventory, {"vhostblk_repo_uri": f"file:{MOUNT}",
                                            "vhostblk_repo_keyring_remote": f"{MOUNT}/vhostblk-local.gpg",
                                            "vhostblk_kmod_install_method": "dkms_deb",
                                            "vhostblk_hypervisor_qemu": has_qemu}, log)
    finally:
        if inst is not None:
            destroy(inst.dir)
            log(f"L1 {name} destroyed")
