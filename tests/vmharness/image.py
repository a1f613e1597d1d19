# SPDX-License-Identifier: GPL-2.0-or-later
"""Build (or reuse) the cached L1 disk image for a recipe.

An image directory holds ``disk.raw`` (sparse ext4 root), ``vmlinuz``, ``initrd.img``, the SSH
key baked into root's authorized_keys and ``recipe.json``. Builds run in a temporary directory
and are renamed into place at the end, under a lock, so a crashed build never leaves a half
image that a later run would trust.
"""

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import HarnessError
from .paths import images_dir
from .recipe import Recipe

HOSTNAME = "vhostblk-l1"

NETWORKD_UNIT = """[Match]
Name=en* eth*

[Network]
DHCP=yes
"""

SSHD_DROPIN = """UseDNS no
PermitRootLogin prohibit-password
PasswordAuthentication no
"""

# Units that only cost boot time in a throwaway test VM.
MASKED_UNITS = (
    "systemd-networkd-wait-online.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "logrotate.timer",
)


@dataclass(frozen=True)
class Image:
    """A ready image on disk."""

    path: Path

    @property
    def disk(self) -> Path:
        return self.path / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def key(self) -> Path:
        return self.path / "id_ed25519"

    def is_complete(self) -> bool:
        return all(p.is_file() for p in (self.disk, self.kernel, self.initrd, self.key, self.path / "recipe.json"))


def kernel_release(vmlinuz: Path) -> str:
    """The release string (uname -r) of a bzImage, read from its setup header (kernel_version)."""
    data = Path(vmlinuz).read_bytes()[:0x10000]
    if data[0x202:0x206] != b"HdrS":
        raise HarnessError(f"{vmlinuz} is not a bzImage")
    offset = int.from_bytes(data[0x20E:0x210], "little") + 0x200
    return data[offset:offset + 256].split(b" ", 1)[0].split(b"\0", 1)[0].decode()


def mmdebstrap_command(recipe: Recipe, root: Path) -> list:
    """The mmdebstrap command line that populates ``root`` for ``recipe``."""
    cmd = [
        "mmdebstrap",
        "--variant=apt",
        "--components=main",
        "--include=" + ",".join(recipe.packages + recipe.extra),
        "--aptopt=Acquire::Retries \"3\"",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        # keep the package lists: apt queries in L1 then work without a network round trip
        "--skip=cleanup/apt/lists",
        recipe.suite,
        str(root),
    ]
    cmd.extend(recipe.sources)
    return cmd


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def customize_root(root: Path, pubkey: str) -> None:
    """Make the root tree bootable as a headless, SSH-reachable test hypervisor."""
    _write(root / "etc/hostname", HOSTNAME + "\n")
    _write(root / "etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n")
    _write(root / "etc/fstab", "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(ssh_dir / "authorized_keys", pubkey, 0o600)
    _write(root / "etc/systemd/network/80-vhostblk-dhcp.network", NETWORKD_UNIT)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    # QEMU user-mode networking's built-in DNS forwarder, inside the VM's virtual network.
    _write(resolv, "nameserver 10.0.2.3\n")
    _write(root / "etc/ssh/sshd_config.d/vhostblk.conf", SSHD_DROPIN)
    subprocess.run(["chroot", str(root), "systemctl", "enable", "systemd-networkd"], check=True,
                   capture_output=True)
    subprocess.run(["chroot", str(root), "systemctl", "mask", *MASKED_UNITS], check=True, capture_output=True)


def _copy_boot_files(root: Path, dest: Path) -> None:
    for link, name in (("vmlinuz", "vmlinuz"), ("initrd.img", "initrd.img")):
        src = root / link
        if not src.exists():
            candidates = sorted((root / "boot").glob(f"{link}-*"))
            if not candidates:
                raise HarnessError(f"image build: no {link} in {root}/boot")
            src = candidates[-1]
        shutil.copyfile(src.resolve(), dest / name)


def build_image(recipe: Recipe, log=print) -> Image:
    """Return the cached image for ``recipe``, building it first when it is not cached."""
    base = images_dir()
    base.mkdir(parents=True, exist_ok=True)
    image = Image(base / recipe.name())
    if image.is_complete():
        return image
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.is_complete():
            return image
        tmp = base / f".build-{recipe.name()}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _build_into(recipe, tmp, log)
            shutil.rmtree(image.path, ignore_errors=True)
            tmp.rename(image.path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _prune_old_images(base, keep=image.path)
    return image


def _build_into(recipe: Recipe, tmp: Path, log) -> None:
    root = tmp / "root"
    start = time.monotonic()
    log(f"image: building {recipe.name()} ({recipe.suite}, {len(recipe.packages)} packages) with mmdebstrap")
    res = subprocess.run(mmdebstrap_command(recipe, root), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise HarnessError(f"mmdebstrap failed ({res.returncode}):\n{res.stderr[-4000:]}")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vhostblk-harness", "-f",
                    str(tmp / "id_ed25519")], check=True)
    customize_root(root, (tmp / "id_ed25519.pub").read_text())
    _copy_boot_files(root, tmp)
    res = subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "vhostblk-root", "-d", str(root),
                          str(tmp / "disk.raw"), recipe.disk_size], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise HarnessError(f"mke2fs failed: {res.stderr[-2000:]}")
    shutil.rmtree(root)
    (tmp / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2, sort_keys=True))
    log(f"image: built {recipe.name()} in {time.monotonic() - start:.0f}s")


def _prune_old_images(base: Path, keep: Path) -> None:
    """Drop images of the same distro whose recipe is gone, so the cache does not grow forever."""
    distro = keep.name.rsplit("-", 1)[0]
    for old in base.glob(f"{distro}-*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
