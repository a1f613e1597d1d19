# SPDX-License-Identifier: GPL-2.0-or-later
"""A package repository disk holding the previous release's vhost-blk packages and this tree's.

    python3 -m vmharness.upgrade_repo --out repo.img --summary upgrade.json [--distro debian12] [--from REF]

The previous release is the newest git tag ``v*`` of this repository (or ``--from REF``): its own
packaging/build_all.py builds its packages from its own sources, for the same kernel. Before the
first tagged release there is none; then the "previous release" is this tree with the module
version lowered to ``<VERSION>~prev`` (Debian sorts it before ``<VERSION>``), which exercises every
step of an upgrade except a change of code, and the summary says so. Both package sets go into one
signed repository (build_repo.py keeps several versions of each package, as a fleet's does), so
the roles can install the previous version, upgrade, and roll back with ``vhostblk_kmod_version``.

The summary (JSON): ``previous`` and ``current`` module versions, ``from`` (the tag, or a note that
it is this tree relabelled), and the .debs of each side.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import HarnessError
from .image import build_image, kernel_release
from .paths import REPO_ROOT
from .recipe import get_recipe

RELABELLED = "this tree with the module version lowered (no tagged release yet)"


def _git(*args):
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)


def newest_tag():
    """The newest release tag v* reachable from HEAD, or None."""
    res = _git("describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
    return res.stdout.strip() or None if res.returncode == 0 else None


def export_tree(ref, dest: Path):
    """The files of git ``ref`` under ``dest`` (HEAD: the working tree's tracked files as they are)."""
    dest.mkdir(parents=True)
    if ref is None:
        files = _git("ls-files", "-z").stdout.split("\0")
        for name in filter(None, files):
            src = REPO_ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
        return
    with tempfile.TemporaryFile() as tar:
        res = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", ref], stdout=tar, stderr=subprocess.PIPE,
                             check=False)
        if res.returncode != 0:
            raise HarnessError(f"git archive {ref}: {res.stderr.decode(errors='replace').strip()}")
        tar.seek(0)
        with tarfile.open(fileobj=tar) as t:
            t.extractall(dest, filter="data")


def _build(cmd, cwd, what):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise HarnessError(f"building the {what} packages failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)


def _debs(summary):
    return {p.name: p for p in Path(summary["debs_dir"]).glob("*.deb")}


def build(distro, out: Path, ref=None):
    recipe = get_recipe(distro)
    image = build_image(recipe, log=lambda m: print(m, file=sys.stderr))
    tag = ref or newest_tag()
    with tempfile.TemporaryDirectory(prefix="vhostblk-upgrade-") as tmp:
        tmp = Path(tmp)
        prev_tree = tmp / "previous"
        export_tree(tag, prev_tree)
        version_file = prev_tree / "kmod-src" / "VERSION"
        current = (REPO_ROOT / "kmod-src" / "VERSION").read_text().strip()
        if tag is None:
            version_file.write_text(current + "~prev\n")
        previous = version_file.read_text().strip()
        if previous == current:
            raise HarnessError(f"{tag} has module version {current}, the same as this tree: nothing to upgrade from")
        args = ["--kernel", kernel_release(image.kernel), "--suite", recipe.suite]
        cur = _build([sys.executable, str(REPO_ROOT / "packaging" / "build_all.py"), *args], REPO_ROOT, "current")
        prev = _build([sys.executable, str(prev_tree / "packaging" / "build_all.py"), *args], prev_tree,
                      "previous release's")
        cur_debs, prev_debs = _debs(cur), _debs(prev)
        # a package both sides built at the same version (the module certificate) is taken from this tree
        prev_only = sorted(name for name in prev_debs if name not in cur_debs)
        merged = tmp / "previous-debs"
        merged.mkdir()
        for name in prev_only:
            shutil.copy2(prev_debs[name], merged / name)
        res = subprocess.run([sys.executable, str(REPO_ROOT / "packaging" / "build_repo.py"), "--debs",
                              str(merged), cur["debs_dir"], "--out", str(tmp / "repo"), "--suite", cur["suite"],
                              "--disk-image", str(out)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise HarnessError(f"publishing both releases failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return {"image": str(out), "suite": cur["suite"], "previous": previous, "current": current,
            "from": tag or RELABELLED, "previous_debs": prev_only, "current_debs": sorted(cur_debs)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--distro", default="debian12")
    ap.add_argument("--out", type=Path, required=True, help="the repository disk image to write")
    ap.add_argument("--summary", type=Path, required=True, help="where to write the JSON summary")
    ap.add_argument("--from", dest="ref", help="git ref of the previous release (default: the newest tag v*)")
    args = ap.parse_args(argv)
    try:
        summary = build(args.distro, args.out.resolve(), args.ref)
    except HarnessError as e:
        print(f"upgrade_repo: {e}", file=sys.stderr)
        return 1
    args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
