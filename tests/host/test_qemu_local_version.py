# SPDX-License-Identifier: GPL-2.0-or-later
"""The local version of the patched QEMU packages (+vhostblkN, packaging/qemu_local_version.py).

- every series' record matches its content (a change committed without a bump fails here);
- a changed patch, a renamed patch or a changed build recipe moves N up, an unchanged tree
  keeps it, and dpkg orders the results the way hosts must upgrade;
- a clean checkout of HEAD (no git history needed) yields the recorded versions;
- build_qemu.py writes that version into debian/changelog, in the form the apt pin matches.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))

import build_qemu  # noqa: E402
import qemu_local_version as qlv  # noqa: E402

SERIES = [d.name for d in qlv.series_dirs()]
DEBIAN_VERSION = "1:7.2+dfsg-7+deb12u18"


def newer(a, b):
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


@pytest.mark.parametrize("series", SERIES)
def test_record_matches_the_series(series):
    suffix, warning = qlv.local_suffix(qlv.PATCH_ROOT / series)
    assert not warning, f"{warning} (and commit qemu-patches/{series}/{qlv.RECORD})"
    assert re.fullmatch(r"\+vhostblk[1-9][0-9]*", suffix), suffix


def test_every_change_moves_the_version_forward(tmp_path):
    series = tmp_path / "7.2"
    shutil.copytree(qlv.PATCH_ROOT / "7.2", series)
    recipe = tmp_path / "build_qemu.py"
    shutil.copy2(qlv.RECIPE, recipe)
    first, warning = qlv.local_suffix(series, recipe)
    assert not warning
    assert qlv.bump(series, recipe) == (int(first[len(qlv.SUFFIX):]), False), "same tree, same version"

    versions = [first]
    patch = sorted(series.glob("*.patch"))[-1]
    patch.write_bytes(patch.read_bytes().replace(b"vhost", b"vHost", 1))
    suffix, warning = qlv.local_suffix(series, recipe)
    assert suffix == first and warning, "a changed patch keeps N but is reported until the bump"
    for change in (lambda: None,  # the patch edit above
                   lambda: recipe.write_text(recipe.read_text() + "# changed recipe\n"),
                   lambda: patch.rename(patch.with_name(patch.name.replace(".patch", "-x.patch")))):
        change()
        revision, bumped = qlv.bump(series, recipe)
        assert bumped
        suffix, warning = qlv.local_suffix(series, recipe)
        assert not warning and suffix == f"{qlv.SUFFIX}{revision}"
        assert qlv.bump(series, recipe) == (revision, False), "a second run must not bump again"
        assert newer(DEBIAN_VERSION + suffix, DEBIAN_VERSION + versions[-1]), (suffix, versions)
        versions.append(suffix)
    # N past 9 still sorts numerically, and Debian's next revision wins over any N
    assert newer(f"{DEBIAN_VERSION}{qlv.SUFFIX}10", f"{DEBIAN_VERSION}{qlv.SUFFIX}9")
    assert newer(f"1:7.2+dfsg-7+deb12u19{qlv.SUFFIX}1", f"{DEBIAN_VERSION}{qlv.SUFFIX}10")


def test_a_clean_checkout_has_the_recorded_versions(tmp_path):
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD", "qemu-patches", "packaging"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True)
    res = subprocess.run([sys.executable, str(tmp_path / "packaging" / Path(qlv.__file__).name), "--check"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.findall(r"^(\S+): \+vhostblk[0-9]+$", res.stdout, re.M) == SERIES, res.stdout


def test_local_version_is_written_to_the_changelog(tmp_path):
    assert shutil.which("dch"), "devscripts not installed (./dev setup)"
    tree = tmp_path / "qemu"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "changelog").write_text(
        f"qemu ({DEBIAN_VERSION}) bookworm-security; urgency=medium\n\n  * x\n\n"
        " -- A B <a@b.invalid>  Mon, 01 Jan 2024 00:00:00 +0000\n")
    version = build_qemu.local_version(tree, ["0001-device.patch"], tmp_path / "log", "7.2")
    assert version == DEBIAN_VERSION + qlv.local_suffix(qlv.PATCH_ROOT / "7.2")[0]
    assert re.fullmatch(r"\S*\+vhostblk[0-9]+", version), "the apt pin's regex must match it"
