# SPDX-License-Identifier: GPL-2.0-or-later
"""Which packages the harness asks packaging/build_all.py for, per image recipe."""

from pathlib import Path

from vmharness import recipe
from vmharness.image import Image
from vmharness.packages import DKMS_ONLY_SUITES, build_all_command


def _bzimage(path: Path, release: str) -> None:
    """The part of a bzImage setup header kernel_release() reads: 'HdrS' and the version string."""
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x400 - 0x200).to_bytes(2, "little")
    version = f"{release} (debian-kernel@lists.debian.org) #1 SMP".encode()
    data[0x400:0x400 + len(version)] = version
    path.write_bytes(bytes(data))


def test_bookworm_repository_has_the_prebuilt_module_for_the_image_kernel(tmp_path):
    _bzimage(tmp_path / "vmlinuz", "6.1.0-56-amd64")
    cmd = build_all_command(recipe.get_recipe("debian12"), Image(tmp_path), tmp_path / "repo.img")
    assert cmd[cmd.index("--kernel") + 1] == "6.1.0-56-amd64"
    assert cmd[cmd.index("--suite") + 1] == "bookworm"
    assert cmd[cmd.index("--repo-image") + 1] == str(tmp_path / "repo.img")


def test_trixie_repository_is_dkms_only(tmp_path):
    # no vmlinuz at all: the kernel release is not even read for a DKMS-only suite
    cmd = build_all_command(recipe.get_recipe("debian13"), Image(tmp_path), tmp_path / "repo.img")
    assert "--kernel" not in cmd
    assert cmd[cmd.index("--suite") + 1] == "trixie"
    assert "trixie" in DKMS_ONLY_SUITES and "bookworm" not in DKMS_ONLY_SUITES
