# SPDX-License-Identifier: GPL-2.0-or-later
"""A stand-in L1 image for harness tests that boot a fake qemu: a 1 MiB raw disk and dummy kernel,
initrd, key and recipe files."""

import subprocess

from vmharness.image import Image


def fake_image(tmp_path) -> Image:
    img = Image(tmp_path / "image")
    img.path.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(img.disk), "1M"], check=True)
    for f in (img.kernel, img.initrd, img.key, img.path / "recipe.json"):
        f.write_text("x")
    return img
