# SPDX-License-Identifier: GPL-2.0-or-later
"""Write a small apt repository (dists/ layout) from a set of .debs, without apt-ftparchive.

    REPO/pool/main/<package>/<file>.deb
    REPO/dists/<suite>/main/binary-<arch>/Packages{,.gz}
    REPO/dists/<suite>/Release   (+ InRelease, Release.gpg from repokey)

Architecture: all packages are listed in every binary-<arch>/Packages (Release says so with
No-Support-for-Architecture-all), so apt never looks for a binary-all index.
"""

import functools
import shutil
import subprocess
import time
from pathlib import Path

import pkgcommon as pc

ORIGIN = "vhostblk-local"
COMPONENT = "main"


def deb_control(deb):
    """The control paragraph of a .deb, as text without the trailing newline."""
    res = pc.run(["dpkg-deb", "--field", deb], capture_output=True, text=True)
    return res.stdout.rstrip("\n")


def control_field(paragraph, name):
    for line in paragraph.splitlines():
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _dpkg_cmp(a, b):
    if a == b:
        return 0
    return -1 if subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0 else 1


version_key = functools.cmp_to_key(_dpkg_cmp)  # dpkg's version order for sorted()


def collect_debs(dirs, with_dbgsym=False):
    """Every *.deb in the given directories (not recursive), debug symbol packages only on request.

    The same file name in two directories must be the same file."""
    found = {}
    for d in dirs:
        for deb in sorted(Path(d).glob("*.deb")):
            if not with_dbgsym and deb.name.split("_", 1)[0].endswith("-dbgsym"):
                continue
            if deb.name in found and pc.file_hashes(deb)["sha256"] != pc.file_hashes(found[deb.name])["sha256"]:
                raise SystemExit(f"two different {deb.name}: {found[deb.name]} and {deb}")
            found.setdefault(deb.name, deb)
    if not found:
        raise SystemExit(f"no .deb files in {', '.join(map(str, dirs))}")
    return list(found.values())


def write_repo(repo, debs, suite, archs=("amd64",), epoch=None):
    """(Re)create pool/ and dists/<suite>/ in repo from debs; return the Release path and the entries."""
    repo = Path(repo)
    for sub in ("pool", "dists"):
        shutil.rmtree(repo / sub, ignore_errors=True)
    entries = []
    for deb in debs:
        ctl = deb_control(deb)
        pkg, ver, arch = (control_field(ctl, f) for f in ("Package", "Version", "Architecture"))
        if arch != "all" and arch not in archs:
            raise SystemExit(f"{deb.name}: architecture {arch} not in {archs}")
        rel = Path("pool") / COMPONENT / pkg / deb.name
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(deb, repo / rel)
        h = pc.file_hashes(repo / rel)
        stanza = (f"{ctl}\nFilename: {rel.as_posix()}\nSize: {h['size']}\n"
                  f"MD5sum: {h['md5']}\nSHA256: {h['sha256']}\n")
        entries.append({"package": pkg, "version": ver, "arch": arch, "stanza": stanza, "file": rel.as_posix()})
    entries.sort(key=lambda e: (e["package"], version_key(e["version"])))

    dist = repo / "dists" / suite
    index_files = []
    for arch in archs:
        bindir = dist / COMPONENT / f"binary-{arch}"
        bindir.mkdir(parents=True)
        text = "\n".join(e["stanza"] for e in entries if e["arch"] in ("all", arch))
        (bindir / "Packages").write_text(text)
        pc.gzip_file(bindir / "Packages", bindir / "Packages.gz")
        index_files += [bindir / "Packages", bindir / "Packages.gz"]
    release = dist / "Release"
    release.write_text(release_text(dist, index_files, suite, archs, epoch))
    return release, entries


def release_text(dist, index_files, suite, archs, epoch):
    hashes = [(f.relative_to(dist).as_posix(), pc.file_hashes(f)) for f in index_files]
    lines = [
        f"Origin: {ORIGIN}",
        f"Label: {ORIGIN}",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {pc.rfc2822(epoch if epoch is not None else time.time())}",
        f"Architectures: {' '.join(archs)}",
        f"Components: {COMPONENT}",
        "No-Support-for-Architecture-all: Packages",
        "Description: vhost-blk fleet packages (kernel module, patched QEMU)",
        "MD5Sum:",
        *(f" {h['md5']} {h['size']:>10} {name}" for name, h in hashes),
        "SHA256:",
        *(f" {h['sha256']} {h['size']:>10} {name}" for name, h in hashes),
    ]
    return "\n".join(lines) + "\n"
