# SPDX-License-Identifier: GPL-2.0-or-later
"""The local apt repository (packaging/aptrepo.py, build_repo.py) checked with real apt, no VM.

Small dummy .debs (dpkg-deb) are published for two codenames, then again with a version bump;
apt runs with private state, cache, sources and status (nothing under /etc or /var) against the
file: repository and its throwaway key. Checked: update, both versions visible and installable
(rollback), by-hash files and a client that read the previous InRelease, Valid-Until and an
expired Release refused (then refreshed without a rebuild), a publish killed before the switch,
version retention and pool pruning, the old key location migrated.
"""

import gzip
import hashlib
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "packaging"
sys.path.insert(0, str(PKG))

import aptrepo  # noqa: E402
from debtools import build_deb, ok, run  # noqa: E402
from repokey import KEYRING_NAME, RepoKey  # noqa: E402

DAY = 86400


def make_deb(out, name, version, payload=""):
    """A tiny arch:all package; payload changes the contents without changing the version."""
    out.mkdir(parents=True, exist_ok=True)
    return build_deb(out / f"{name}_{version}_all.deb",
                     f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\n"
                     f"Description: repository test package\n {name} {version}\n",
                     {f"usr/share/doc/{name}/stamp": f"{name} {version} {payload}\n"})


def publish(repo, key_dir, codename, debs_dir, *extra):
    return ok([sys.executable, PKG / "build_repo.py", "--debs", debs_dir, "--out", repo, "--codename", codename,
               "--key-dir", key_dir, *extra])


def apt(work, name, repo, codename, args, keyring=None, options=()):
    """apt-get/apt-cache with private state, cache, sources, status and preferences."""
    root = work / f"apt-{name}"
    for d in ("state/lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    # the host's apt.conf.d is not read: a build host or CI image may turn Check-Valid-Until off
    (root / "apt.conf").write_text(f'Dir::Etc::parts "{root}/etc/apt.conf.d";\nDir::Etc::main "/dev/null";\n')
    keyring = keyring or Path(repo) / KEYRING_NAME
    (root / "sources.list").write_text(f"deb [signed-by={keyring}] file:{repo} {codename} main\n")
    opts = [f"-oDir::Etc::sourcelist={root}/sources.list", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State={root}/state", f"-oDir::State::status={root}/status", f"-oDir::Cache={root}/cache",
            "-oDir::Etc::Preferences=/dev/null", f"-oDir::Etc::PreferencesParts={root}/etc/preferences.d",
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", *options]
    return run([args[0], *opts, *args[1:]], cwd=root, env=dict(os.environ, APT_CONFIG=str(root / "apt.conf")))


def apt_update(work, name, repo, codename, **kw):
    res = apt(work, name, repo, codename, ["apt-get", "update"], **kw)
    assert res.returncode == 0 and not re.search(r"^[WE]:", res.stdout + res.stderr, re.M), \
        res.stdout + res.stderr
    return res


def madison(work, name, repo, codename, package):
    out = apt(work, name, repo, codename, ["apt-cache", "madison", package]).stdout
    return [line.split("|")[1].strip() for line in out.splitlines() if "|" in line]


def release_sha256(release_text):
    block = re.search(r"^SHA256:\n((?: .*\n)*)", release_text, re.M).group(1)
    return {line.split()[2]: line.split()[0] for line in block.splitlines()}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("aptrepo")


@pytest.fixture(scope="module")
def key_dir(work):
    RepoKey(work / "key").ensure()
    return work / "key"


@pytest.fixture(scope="module")
def repo(work, key_dir):
    """bookworm: alpha, beta; trixie: alpha (the same pool file), gamma; then alpha and beta bumped.

    Returns the repository and each codename's InRelease as it was before the bump."""
    out = work / "repo"
    v1, v2 = work / "debs-1", work / "debs-2"
    make_deb(v1 / "bookworm", "alpha", "1.0")
    make_deb(v1 / "bookworm", "beta", "1.0")
    v1t = v1 / "trixie"
    v1t.mkdir(parents=True)
    shutil.copy2(v1 / "bookworm" / "alpha_1.0_all.deb", v1t)
    make_deb(v1t, "gamma", "1.0")
    publish(out, key_dir, "bookworm", v1 / "bookworm")
    publish(out, key_dir, "trixie", v1t)
    before = {c: (out / "dists" / c / "InRelease").read_text() for c in ("bookworm", "trixie")}
    make_deb(v2 / "bookworm", "alpha", "1.1")
    make_deb(v2 / "bookworm", "beta", "1.1")
    v2t = v2 / "trixie"
    v2t.mkdir(parents=True)
    shutil.copy2(v2 / "bookworm" / "alpha_1.1_all.deb", v2t)
    publish(out, key_dir, "bookworm", v2 / "bookworm")
    publish(out, key_dir, "trixie", v2t)
    return out, before


def test_one_repository_holds_both_codenames(repo):
    out, _before = repo
    assert sorted(p.name for p in (out / "dists").iterdir()) == ["bookworm", "trixie"]
    assert (out / "dists").is_symlink()
    pool = sorted(p.relative_to(out).as_posix() for p in (out / "pool").rglob("*.deb"))
    assert pool == ["pool/main/alpha/alpha_1.0_all.deb", "pool/main/alpha/alpha_1.1_all.deb",
                    "pool/main/beta/beta_1.0_all.deb", "pool/main/beta/beta_1.1_all.deb",
                    "pool/main/gamma/gamma_1.0_all.deb"]
    trixie = (out / "dists/trixie/main/binary-amd64/Packages").read_text()
    assert "Package: beta\n" not in trixie and "Package: gamma\n" in trixie


def test_release_is_signed_and_valid_for_30_days(repo):
    out, _before = repo
    keyring = out / KEYRING_NAME
    for codename in ("bookworm", "trixie"):
        dist = out / "dists" / codename
        ok(["gpgv", "--keyring", keyring, dist / "InRelease"])
        ok(["gpgv", "--keyring", keyring, dist / "Release.gpg", dist / "Release"])
        fields = aptrepo.release_fields(dist / "Release")
        assert fields["Codename"] == codename and fields["Acquire-By-Hash"] == "yes"
        date, until = aptrepo.parse_date(fields["Date"]), aptrepo.parse_date(fields["Valid-Until"])
        assert until - date == 30 * DAY
        assert abs(date - time.time()) < 600
        assert (dist / "Release").read_text() in (dist / "InRelease").read_text()


def test_apt_sees_both_versions_per_codename(repo, work):
    out, _before = repo
    apt_update(work, "bookworm", out, "bookworm")
    assert madison(work, "bookworm", out, "bookworm", "alpha") == ["1.1", "1.0"]
    assert madison(work, "bookworm", out, "bookworm", "beta") == ["1.1", "1.0"]
    policy = apt(work, "bookworm", out, "bookworm", ["apt-cache", "policy", "alpha"]).stdout
    assert "Candidate: 1.1" in policy, policy
    apt_update(work, "trixie", out, "trixie")
    assert madison(work, "trixie", out, "trixie", "alpha") == ["1.1", "1.0"]
    assert madison(work, "trixie", out, "trixie", "gamma") == ["1.0"]
    assert madison(work, "trixie", out, "trixie", "beta") == []


def test_rollback_installs_the_older_version(repo, work):
    out, _before = repo
    apt_update(work, "rollback", out, "bookworm")
    for version in ("1.1", "1.0"):
        sim = apt(work, "rollback", out, "bookworm", ["apt-get", "install", "-s", "-y", f"alpha={version}"])
        assert sim.returncode == 0 and f"Inst alpha ({version} " in sim.stdout, sim.stdout + sim.stderr
    got = apt(work, "rollback", out, "bookworm", ["apt-get", "download", "alpha=1.0"])
    assert got.returncode == 0, got.stdout + got.stderr
    deb = work / "apt-rollback" / "alpha_1.0_all.deb"
    assert ok(["dpkg-deb", "--field", deb, "Version"]).strip() == "1.0"


def test_by_hash_files_exist_and_match(repo):
    out, before = repo
    for codename in ("bookworm", "trixie"):
        dist = out / "dists" / codename
        listed = release_sha256((dist / "Release").read_text())
        assert set(listed) == {"main/binary-amd64/Packages", "main/binary-amd64/Packages.gz"}
        for name, sha in listed.items():
            byhash = dist / Path(name).parent / "by-hash" / "SHA256" / sha
            assert byhash.is_file(), byhash
            assert hashlib.sha256(byhash.read_bytes()).hexdigest() == sha
            assert byhash.read_bytes() == (dist / name).read_bytes()
        # the indexes of the InRelease before the bump are still there (clients in flight)
        for name, sha in release_sha256(before[codename]).items():
            old = dist / Path(name).parent / "by-hash" / "SHA256" / sha
            assert hashlib.sha256(old.read_bytes()).hexdigest() == sha
        packages = gzip.decompress((dist / "main/binary-amd64/Packages.gz").read_bytes()).decode()
        assert packages == (dist / "main/binary-amd64/Packages").read_text()


def test_client_with_the_previous_inrelease_gets_its_indexes_by_hash(repo, work):
    """A client that read InRelease just before the switch asks for the indexes afterwards: the
    new tree serves them by hash (plain names would have the new contents)."""
    out, before = repo
    mixed = work / "mixed"
    dist = mixed / "dists" / "bookworm"
    dist.mkdir(parents=True)
    (dist / "InRelease").write_text(before["bookworm"])
    (dist / "main").symlink_to(out / "dists" / "bookworm" / "main")
    (mixed / "pool").symlink_to(out / "pool")
    keyring = out / KEYRING_NAME
    apt_update(work, "inflight", mixed, "bookworm", keyring=keyring)
    assert madison(work, "inflight", mixed, "bookworm", "alpha") == ["1.0"]
    plain = apt(work, "inflight-plain", mixed, "bookworm", ["apt-get", "update"], keyring=keyring,
                options=["-oAcquire::By-Hash=no"])
    assert "Hash Sum mismatch" in plain.stdout + plain.stderr or "File has unexpected size" in \
        plain.stdout + plain.stderr, plain.stdout + plain.stderr


def test_publishing_the_same_debs_again_changes_nothing(repo, work, key_dir):
    out, _before = repo
    link = os.readlink(out / "dists")
    res = publish(out, key_dir, "bookworm", work / "debs-2" / "bookworm")
    assert '"changed": false' in res
    assert os.readlink(out / "dists") == link


def test_expired_release_is_refused_and_refreshed_without_rebuild(work, key_dir):
    out = work / "expired"
    debs = work / "debs-expired"
    make_deb(debs, "alpha", "1.0")
    publish(out, key_dir, "bookworm", debs, "--date", str(int(time.time()) - 40 * DAY))
    fields = aptrepo.release_fields(out / "dists/bookworm/Release")
    assert aptrepo.parse_date(fields["Valid-Until"]) < time.time()
    res = apt(work, "expired", out, "bookworm", ["apt-get", "update"])
    assert res.returncode != 0 and "is expired" in res.stdout + res.stderr, res.stdout + res.stderr
    assert madison(work, "expired", out, "bookworm", "alpha") == []
    packages = (out / "dists/bookworm/main/binary-amd64/Packages").read_bytes()
    pool = {p: p.stat().st_ino for p in (out / "pool").rglob("*.deb")}

    refreshed = ok([sys.executable, PKG / "build_repo.py", "--refresh", "--out", out, "--key-dir", key_dir])
    assert '"changed": true' in refreshed
    assert (out / "dists/bookworm/main/binary-amd64/Packages").read_bytes() == packages
    assert {p: p.stat().st_ino for p in (out / "pool").rglob("*.deb")} == pool
    apt_update(work, "expired", out, "bookworm")
    assert madison(work, "expired", out, "bookworm", "alpha") == ["1.0"]
    again = ok([sys.executable, PKG / "build_repo.py", "--refresh", "--out", out, "--key-dir", key_dir])
    assert '"changed": false' in again, "refreshed only when less than half of the validity is left"


CRASH = """
import os, signal, sys
sys.path.insert(0, {pkg!r})
import aptrepo, build_repo
def crash(repo, gen):
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as a power cut
aptrepo._switch = crash
build_repo.main({argv!r})
"""


def test_publish_killed_before_the_switch_leaves_the_old_tree(work, key_dir):
    out = work / "crash"
    make_deb(work / "debs-crash-1", "alpha", "1.0")
    make_deb(work / "debs-crash-2", "alpha", "2.0")
    publish(out, key_dir, "bookworm", work / "debs-crash-1")
    served = {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "dists").rglob("*") if p.is_file()}
    link = os.readlink(out / "dists")
    argv = ["--debs", str(work / "debs-crash-2"), "--out", str(out), "--codename", "bookworm",
            "--key-dir", str(key_dir)]
    res = run([sys.executable, "-c", CRASH.format(pkg=str(PKG), argv=argv)])
    assert res.returncode == -signal.SIGKILL, res.stdout + res.stderr
    assert len(aptrepo.Repo(out).generations()) == 2, "the new generation was written completely"
    assert os.readlink(out / "dists") == link
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "dists").rglob("*")
            if p.is_file()} == served
    apt_update(work, "crash", out, "bookworm")
    assert madison(work, "crash", out, "bookworm", "alpha") == ["1.0"]
    publish(out, key_dir, "bookworm", work / "debs-crash-2")
    apt_update(work, "crash", out, "bookworm")
    assert madison(work, "crash", out, "bookworm", "alpha") == ["2.0", "1.0"]


def test_versions_kept_and_pool_pruned(work, key_dir):
    out = work / "retain"
    for n in range(6):
        debs = work / f"debs-retain-{n}"
        make_deb(debs, "alpha", f"1.{n}")
        publish(out, key_dir, "bookworm", debs, "--keep-versions", "3")
    apt_update(work, "retain", out, "bookworm")
    assert madison(work, "retain", out, "bookworm", "alpha") == ["1.5", "1.4", "1.3"]
    repo = aptrepo.Repo(out)
    assert len(repo.generations()) == aptrepo.DEFAULT_KEEP_GENERATIONS
    referenced = repo.referenced_files(repo.generations())
    in_pool = {p.relative_to(out).as_posix() for p in (out / "pool").rglob("*.deb")}
    assert in_pool == referenced == {f"pool/main/alpha/alpha_1.{n}_all.deb" for n in (1, 2, 3, 4, 5)}


def test_same_version_with_other_contents_is_refused(work, key_dir):
    out = work / "clash"
    make_deb(work / "debs-clash-1", "alpha", "1.0", payload="first")
    make_deb(work / "debs-clash-2", "alpha", "1.0", payload="second")
    publish(out, key_dir, "bookworm", work / "debs-clash-1")
    res = run([sys.executable, PKG / "build_repo.py", "--debs", work / "debs-clash-2", "--out", out,
               "--codename", "bookworm", "--key-dir", key_dir])
    assert res.returncode != 0 and "already published with other contents" in res.stderr, res.stderr
    apt_update(work, "clash", out, "bookworm")
    got = apt(work, "clash", out, "bookworm", ["apt-get", "download", "alpha=1.0"])
    assert got.returncode == 0, got.stdout + got.stderr  # the pool file still matches the index
    # the shared pool: another codename cannot bring a different file under the same name either
    res = run([sys.executable, PKG / "build_repo.py", "--debs", work / "debs-clash-2", "--out", out,
               "--codename", "trixie", "--key-dir", key_dir])
    assert res.returncode != 0 and "pool/main/alpha/alpha_1.0_all.deb is already published" in res.stderr, res.stderr
    assert not (out / "dists" / "trixie").exists()


def test_bad_arguments_are_refused(work, key_dir):
    debs = work / "debs-1" / "bookworm"
    for bad in (["--keep-versions", "0"], ["--valid-days", "-1"], ["--codename", "Bookworm"],
                ["--keep-generations", "1"]):
        res = run([sys.executable, PKG / "build_repo.py", "--debs", debs, "--out", work / "never", "--key-dir",
                   key_dir, *bad])
        assert res.returncode == 2 and bad[0] in res.stderr, (bad, res.stderr)
    assert not (work / "never").exists()


def test_repository_of_the_old_layout_is_taken_over(work, key_dir):
    """A repository written before generations (a real dists/ directory) keeps its packages."""
    out = work / "legacy"
    make_deb(work / "debs-legacy-1", "alpha", "1.0")
    make_deb(work / "debs-legacy-2", "alpha", "1.1")
    publish(out, key_dir, "bookworm", work / "debs-legacy-1")
    gen = out / os.readlink(out / "dists")
    (out / "dists").unlink()
    shutil.copytree(gen, out / "dists")
    shutil.rmtree(out / aptrepo.GENERATIONS)
    publish(out, key_dir, "bookworm", work / "debs-legacy-2")
    assert (out / "dists").is_symlink()
    apt_update(work, "legacy", out, "bookworm")
    assert madison(work, "legacy", out, "bookworm", "alpha") == ["1.1", "1.0"]


def test_key_moves_from_the_cache_to_var_lib(work):
    """The default key directory is under $VHOSTBLK_STATE (/var/lib/vhostblk-fleet); a key left in
    the old $VHOSTBLK_CACHE/repo-key is moved there, so clients keep trusting the same key."""
    cache, state = work / "var-cache", work / "var-lib"
    old = RepoKey(cache / "repo-key", migrate_from=False)
    fpr = old.ensure()
    public = old.keyring.read_bytes()
    make_deb(work / "debs-migrate", "alpha", "1.0")
    env = dict(os.environ, VHOSTBLK_CACHE=str(cache), VHOSTBLK_STATE=str(state))
    res = run([sys.executable, PKG / "build_repo.py", "--debs", work / "debs-migrate", "--out", work / "migrated",
               "--codename", "bookworm"], env=env)
    assert res.returncode == 0, res.stderr
    assert '"key_migrated": true' in res.stdout and fpr in res.stdout
    assert (state / "repo-key" / "fingerprint").read_text().strip() == fpr
    assert not (cache / "repo-key").exists(), "no second copy of the secret key in the cache"
    assert (work / "migrated" / KEYRING_NAME).read_bytes() == public
    ok(["gpgv", "--keyring", work / "migrated" / KEYRING_NAME, work / "migrated/dists/bookworm/InRelease"])
    again = run([sys.executable, PKG / "build_repo.py", "--refresh", "--force", "--out", work / "migrated"], env=env)
    assert again.returncode == 0 and '"key_migrated": false' in again.stdout and fpr in again.stdout, again.stderr
