# SPDX-License-Identifier: GPL-2.0-or-later
"""The local apt repository: several codenames, one pool, previous versions kept, atomic publish.

Layout (what dak, Debian's archive software, serves, minus what a small repository does not need):

    REPO/pool/main/<package>/<file>.deb            shared by every codename
    REPO/dists -> .dists/<generation>              symlink, switched by rename(2)
    REPO/.dists/<generation>/<codename>/Release, InRelease, Release.gpg
    REPO/.dists/<generation>/<codename>/main/binary-<arch>/Packages{,.gz}
    REPO/.dists/<generation>/<codename>/main/binary-<arch>/by-hash/SHA256/<sha256>

Release has Date, Valid-Until (Date + validity: a client refuses a Release older than that, so a
stale signed one cannot be replayed; refresh() re-signs without rebuilding) and
Acquire-By-Hash: yes. A publish writes a complete new generation beside the live one (pool files
first, new names only), signs it and then points ``dists`` at it with one rename: a client reads
either the old or the new InRelease, never one whose hashes do not match the indexes. A client
that read the old InRelease just before the switch still finds its indexes: each generation
carries the by-hash files of the generations kept (``keep_generations``), as Debian keeps them for
a while. A crash before the switch leaves the served tree as it was; the partial generation is
removed by the next publish.

Previous versions: each codename keeps the ``keep_versions`` highest versions of every package
(per architecture), so ``apt-get install pkg=<older version>`` can roll back. Pool files no kept
generation references are removed after the switch.

Architecture: all packages are listed in every binary-<arch>/Packages (Release says so with
No-Support-for-Architecture-all), so apt never looks for a binary-all index.
"""

import calendar
import functools
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pkgcommon as pc

ORIGIN = "vhostblk-local"
COMPONENT = "main"
ARCHS = ("amd64",)
DEFAULT_KEEP_VERSIONS = 3
DEFAULT_VALID_DAYS = 30
DEFAULT_KEEP_GENERATIONS = 3
GENERATIONS = ".dists"
CODENAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
DATE_FORMAT = "%a, %d %b %Y %H:%M:%S UTC"


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


def format_date(epoch):
    return time.strftime(DATE_FORMAT, time.gmtime(epoch))


def parse_date(text):
    return calendar.timegm(time.strptime(text.strip(), DATE_FORMAT))


def release_fields(path):
    """The single-line fields of a Release file (hash lists left out)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith(" ") and ":" in line:
            key, _sep, val = line.partition(":")
            if val.strip():
                out[key] = val.strip()
    return out


# ---- entries: one package version of one codename --------------------------------------------

def _entry(stanza):
    fields = {k: control_field(stanza, k) for k in ("Package", "Version", "Architecture", "Filename", "SHA256")}
    if not all(fields.values()):
        raise SystemExit(f"Packages stanza without {[k for k, v in fields.items() if not v]}:\n{stanza}")
    return {"package": fields["Package"], "version": fields["Version"], "arch": fields["Architecture"],
            "file": fields["Filename"], "sha256": fields["SHA256"], "stanza": stanza.rstrip("\n") + "\n"}


def parse_packages(text):
    return [_entry(block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def deb_entry(deb, archs=ARCHS):
    """The index entry of one .deb (its pool path, hashes and control stanza); nothing is written."""
    ctl = deb_control(deb)
    pkg, ver, arch = (control_field(ctl, f) for f in ("Package", "Version", "Architecture"))
    if arch != "all" and arch not in archs:
        raise SystemExit(f"{deb.name}: architecture {arch} not in {archs}")
    rel = Path("pool") / COMPONENT / pkg / deb.name
    h = pc.file_hashes(deb)
    stanza = (f"{ctl}\nFilename: {rel.as_posix()}\nSize: {h['size']}\n"
              f"MD5sum: {h['md5']}\nSHA256: {h['sha256']}\n")
    return {"package": pkg, "version": ver, "arch": arch, "file": rel.as_posix(), "sha256": h["sha256"],
            "stanza": stanza, "source": Path(deb)}


def add_to_pool(root, entry, published):
    """Copy a .deb into the pool atomically; a different file under a published name is refused."""
    dest = Path(root) / entry["file"]
    if dest.exists() and pc.file_hashes(dest)["sha256"] == entry["sha256"]:
        return
    if entry["file"] in published:
        raise SystemExit(f"{entry['file']} is already published with other contents: a pool file never changes "
                         "(the same package and version built twice, for two codenames?); give it a new version")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copy2(entry["source"], tmp)
    os.chmod(tmp, 0o644)
    tmp.replace(dest)


def retain(entries, keep_versions):
    """The keep_versions highest versions of every (package, architecture), sorted for the index."""
    groups = {}
    for e in entries:
        groups.setdefault((e["package"], e["arch"]), []).append(e)
    kept = []
    for group in groups.values():
        group.sort(key=lambda e: version_key(e["version"]), reverse=True)
        kept += group[:keep_versions]
    kept.sort(key=lambda e: (e["package"], version_key(e["version"]), e["arch"]))
    return kept


def merge(old, new, keep_versions, drop=()):
    """A codename's entries after adding new ones: same version must mean the same file."""
    by_id = {(e["package"], e["version"], e["arch"]): e for e in old if e["package"] not in drop}
    for e in new:
        ident = (e["package"], e["version"], e["arch"])
        prev = by_id.get(ident)
        if prev is not None and prev["sha256"] != e["sha256"]:
            raise SystemExit(
                f"{e['package']} {e['version']} ({e['arch']}) is already published with other contents "
                f"({prev['file']}): clients that installed it would never get the new build; give it a new version "
                "(kmod-src/VERSION, qemu-patches/<ver>/local-version) or --drop-package it first")
        by_id[ident] = e
    return retain(list(by_id.values()), keep_versions)


# ---- the repository --------------------------------------------------------------------------

class Repo:
    def __init__(self, root, archs=ARCHS):
        self.root = Path(root)
        self.archs = tuple(archs)
        self.gens = self.root / GENERATIONS
        self.link = self.root / "dists"

    def generations(self):
        """Complete generations, oldest first."""
        if not self.gens.is_dir():
            return []
        return sorted((p for p in self.gens.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))

    def current(self):
        """The generation ``dists`` points at (None for an empty repository)."""
        if not self.link.is_symlink():
            return None
        return self.gens / Path(os.readlink(self.link)).name

    def _adopt_legacy_dists(self):
        """A repository written before generations had a real dists/ directory: make it generation 0."""
        if self.link.is_dir() and not self.link.is_symlink():
            self.gens.mkdir(exist_ok=True)
            os.rename(self.link, self.gens / "000000")
            os.symlink(f"{GENERATIONS}/000000", self.link)

    def codenames(self, gen):
        if gen is None:
            return []
        return sorted(p.name for p in gen.iterdir() if (p / "Release").is_file())

    def entries(self, gen, codename):
        seen = {}
        for arch in self.archs:
            packages = gen / codename / COMPONENT / f"binary-{arch}" / "Packages"
            if packages.is_file():
                for e in parse_packages(packages.read_text()):
                    seen.setdefault((e["package"], e["version"], e["arch"]), e)
        return sorted(seen.values(), key=lambda e: (e["package"], version_key(e["version"]), e["arch"]))

    def state(self, gen):
        return {c: self.entries(gen, c) for c in self.codenames(gen)}

    def index_texts(self, entries):
        return {arch: "\n".join(e["stanza"] for e in entries if e["arch"] in ("all", arch)) for arch in self.archs}

    def referenced_files(self, gens):
        files = set()
        for gen in gens:
            for codename in self.codenames(gen):
                files |= {e["file"] for e in self.entries(gen, codename)}
        return files

    def valid_until(self, gen):
        """{codename: Valid-Until epoch or None}."""
        out = {}
        for codename in self.codenames(gen):
            value = release_fields(gen / codename / "Release").get("Valid-Until")
            out[codename] = parse_date(value) if value else None
        return out


def _release_hashes(release):
    """SHA256 sums listed in a Release file."""
    text = Path(release).read_text()
    block = re.search(r"^SHA256:\n((?: .*\n?)*)", text, re.M)
    return {line.split()[0] for line in block.group(1).splitlines()} if block else set()


def release_text(dist, index_files, codename, archs, date, valid_days):
    hashes = [(f.relative_to(dist).as_posix(), pc.file_hashes(f)) for f in index_files]
    lines = [
        f"Origin: {ORIGIN}",
        f"Label: {ORIGIN}",
        f"Suite: {codename}",
        f"Codename: {codename}",
        f"Date: {format_date(date)}",
        f"Valid-Until: {format_date(date + valid_days * 86400)}",
        f"Architectures: {' '.join(archs)}",
        f"Components: {COMPONENT}",
        "Acquire-By-Hash: yes",
        "No-Support-for-Architecture-all: Packages",
        "Description: vhost-blk fleet packages (kernel module, patched QEMU)",
        "MD5Sum:",
        *(f" {h['md5']} {h['size']:>10} {name}" for name, h in hashes),
        "SHA256:",
        *(f" {h['sha256']} {h['size']:>10} {name}" for name, h in hashes),
    ]
    return "\n".join(lines) + "\n"


def _write_codename(repo, dist, entries, prev_dist, recent_hashes, date, valid_days):
    """One codename's indexes, by-hash files (new and recent ones) and unsigned Release."""
    index_files = []
    for arch, text in repo.index_texts(entries).items():
        bindir = dist / COMPONENT / f"binary-{arch}"
        byhash = bindir / "by-hash" / "SHA256"
        byhash.mkdir(parents=True)
        (bindir / "Packages").write_text(text)
        pc.gzip_file(bindir / "Packages", bindir / "Packages.gz")
        for f in (bindir / "Packages", bindir / "Packages.gz"):
            target = byhash / pc.file_hashes(f)["sha256"]
            if not target.exists():
                os.link(f, target)
            index_files.append(f)
        old = prev_dist / COMPONENT / f"binary-{arch}" / "by-hash" / "SHA256" if prev_dist else None
        if old and old.is_dir():
            for f in old.iterdir():
                if f.name in recent_hashes and not (byhash / f.name).exists():
                    os.link(f, byhash / f.name)
    (dist / "Release").write_text(release_text(dist, index_files, dist.name, repo.archs, date, valid_days))
    return dist / "Release"


def _switch(repo, gen):
    """Point dists at gen with one rename: the moment a client sees the new generation."""
    tmp = repo.root / ".dists.new"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(f"{GENERATIONS}/{gen.name}", tmp)
    os.replace(tmp, repo.link)


def _prune(repo, keep_generations):
    gens = repo.generations()
    current = repo.current()
    for old in gens[:-keep_generations]:
        if old != current:
            shutil.rmtree(old)
    kept = repo.generations()
    referenced = repo.referenced_files(kept)
    removed = []
    pool = repo.root / "pool"
    for f in sorted(pool.rglob("*")) if pool.is_dir() else []:
        rel = f.relative_to(repo.root).as_posix()
        if f.is_file() and rel not in referenced:
            f.unlink()
            removed.append(rel)
    for d in sorted((p for p in pool.rglob("*") if p.is_dir()), reverse=True) if pool.is_dir() else []:
        if not any(d.iterdir()):
            d.rmdir()
    return removed


def publish(root, key, codename=None, debs=(), keep_versions=DEFAULT_KEEP_VERSIONS, valid_days=DEFAULT_VALID_DAYS,
            keep_generations=DEFAULT_KEEP_GENERATIONS, drop=(), date=None, refresh=False, force=False,
            archs=ARCHS, on_switch=None):
    """Add debs to codename (or, refresh=True, only re-sign) and publish a new generation when needed.

    A new generation is written when the indexes change, when force is set, or when refreshing and
    less than half of the validity is left (or the Release has none). on_switch(repo, entries by
    codename) runs after the switch (top-level files). Returns a summary dict."""
    if keep_versions < 1 or keep_generations < 2 or valid_days < 1:
        raise SystemExit("keep_versions >= 1, keep_generations >= 2 and valid_days >= 1 are required")
    if codename is not None and not CODENAME_RE.match(codename):
        raise SystemExit(f"codename {codename!r} is not a Debian codename (lower case, digits, -)")
    repo = Repo(root, archs)
    repo.root.mkdir(parents=True, exist_ok=True)
    now = time.time() if date is None else date
    with pc.locked(repo.root / ".lock"):
        repo._adopt_legacy_dists()
        repo.gens.mkdir(exist_ok=True)
        for partial in repo.gens.glob("*.partial"):  # left by a crash before the switch
            shutil.rmtree(partial)
        current = repo.current()
        for orphan in repo.generations():  # complete but never switched to: a crash before the switch
            if current is None or int(orphan.name) > int(current.name):
                shutil.rmtree(orphan)
        old_state = repo.state(current) if current else {}
        state = dict(old_state)
        if refresh:
            if not state:
                raise SystemExit(f"{repo.root}: no published codename to refresh")
        else:
            if codename is None:
                raise SystemExit("a codename is needed to add packages")
            new = [deb_entry(Path(d), archs) for d in debs]
            state[codename] = merge(old_state.get(codename, []), new, keep_versions, set(drop))
            published = repo.referenced_files(repo.generations())
            for e in new:
                add_to_pool(repo.root, e, published)
        unchanged = {c: repo.index_texts(e) for c, e in state.items()} == \
                    {c: repo.index_texts(e) for c, e in old_state.items()}
        valid = repo.valid_until(current) if current else {}
        due = any(v is None or v - now < valid_days * 86400 / 2 for v in valid.values())
        if unchanged and not force and not (refresh and due):
            return _summary(repo, current, state, changed=False)

        number = int(current.name) + 1 if current and current.name.isdigit() else 1
        number = max([number] + [int(g.name) + 1 for g in repo.generations()])
        final = repo.gens / f"{number:06d}"
        work = repo.gens / f"{number:06d}.partial"
        work.mkdir()
        recent = set()  # by-hash files that clients of the kept generations may still ask for
        for gen in repo.generations()[-(keep_generations - 1):]:
            for c in repo.codenames(gen):
                recent |= _release_hashes(gen / c / "Release")
        for c, entries in sorted(state.items()):
            release = _write_codename(repo, work / c, entries, current / c if current else None, recent, now,
                                      valid_days)
            key.sign_release(release)
        os.rename(work, final)
        _switch(repo, final)
        if on_switch:
            on_switch(repo, state)
        removed = _prune(repo, keep_generations)
        return _summary(repo, final, state, changed=True, removed=removed)


def _summary(repo, gen, state, changed, removed=()):
    return {"repo": str(repo.root), "generation": gen.name if gen else None, "changed": changed,
            "valid_until": {c: format_date(v) if v else None for c, v in repo.valid_until(gen).items()} if gen else {},
            "codenames": {c: [f"{e['package']} {e['version']} {e['arch']}" for e in entries]
                          for c, entries in sorted(state.items())},
            "pool_removed": list(removed)}


def refresh_due(root, valid_days=DEFAULT_VALID_DAYS, now=None):
    """True when a codename's Valid-Until is missing or less than half the validity away."""
    repo = Repo(root)
    gen = repo.current() if repo.link.is_symlink() else (repo.link if repo.link.is_dir() else None)
    if gen is None:
        return False
    now = time.time() if now is None else now
    return any(v is None or v - now < valid_days * 86400 / 2 for v in repo.valid_until(gen).values())
