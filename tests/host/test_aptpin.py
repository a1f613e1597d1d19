# SPDX-License-Identifier: GPL-2.0-or-later
"""The QEMU pin (packaging/aptpin.py) against real apt, no VM, nothing system-wide.

Stand-ins for Debian's QEMU packages are made with dpkg-deb, with Debian's exact-version
dependencies (qemu-block-extra and qemu-system-gui on `qemu-system-x86 (= V)`, qemu-system-x86
on `qemu-system-common (= V)`). "Debian" is two unsigned file: suites with Debian's Origin and
Labels (bookworm with a binNMU of deb12u18, bookworm-security with deb12u19); ours is published
by build_repo.py (a +vhostblk3 build of deb12u18). apt runs with private state, cache, sources,
status and preferences; the dpkg status file says which versions are "installed".

Checked: our build beats the Debian version it was built from; once Debian publishes a newer
version it beats our installed build, and an upgrade moves every package together (none kept
back); a rebuild on the new version wins again; vhostblk_qemu_updates reads each of these from
the live `apt-cache policy` output. APT::Default-Release: a plain codename holds the security
suite below ours (as it holds it below Debian's own bookworm version), the suite regex does not.
"""

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "packaging"
sys.path.insert(0, str(PKG))

# unit.conftest puts ansible_collections.vhostblk.fleet on sys.path
import aptpin  # noqa: E402
import unit.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_qemu_updates as upd  # noqa: E402
from debtools import build_deb, ok  # noqa: E402
from repokey import KEYRING_NAME  # noqa: E402

OLD = "1:7.2+dfsg-7+deb12u18"
BINNMU = OLD + "+b3"
OURS = OLD + "+vhostblk3"
SECURITY = "1:7.2+dfsg-7+deb12u19"
REBUILT = SECURITY + "+vhostblk4"
PACKAGES = ("qemu-system-common", "qemu-system-x86", "qemu-block-extra", "qemu-system-gui")
DEBIAN_SUITES = {"bookworm": "Debian", "bookworm-security": "Debian-Security"}


def control(name, version):
    """Control fields of one stand-in, with the exact-version dependencies Debian's packages have."""
    deps = {
        "qemu-system-x86": f"Depends: qemu-system-common (= {version})\n"
                           f"Recommends: qemu-block-extra (= {version}), qemu-system-gui (= {version})\n",
        "qemu-block-extra": f"Depends: qemu-system-x86 (= {version})\n",
        "qemu-system-gui": f"Depends: qemu-system-x86 (= {version})\n",
    }.get(name, "")
    return (f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: test <t@example.org>\n"
            f"{deps}Description: stand-in for {name}\n pin test\n")


def make_debs(out, version):
    out.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        build_deb(out / f"{name}_{version.split(':')[1]}_amd64.deb", control(name, version))
    return out


def debian_suite(root, suite, version, work):
    """An unsigned suite with Debian's Origin and Label holding the stand-ins at version."""
    debs = make_debs(work / f"debs-{suite}", version)
    bindir = root / "dists" / suite / "main" / "binary-amd64"
    bindir.mkdir(parents=True)
    stanzas = []
    for deb in sorted(debs.glob("*.deb")):
        rel = Path("pool") / suite / deb.name
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(deb, root / rel)
        data = deb.read_bytes()
        stanzas.append(ok(["dpkg-deb", "--field", deb]).rstrip("\n") +
                       f"\nFilename: {rel}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (bindir / "Packages").write_bytes(packages)
    (root / "dists" / suite / "Release").write_text(
        f"Origin: Debian\nLabel: {DEBIAN_SUITES[suite]}\nSuite: {suite}\nCodename: {suite}\n"
        "Architectures: amd64\nComponents: main\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-amd64/Packages\n")


def publish_ours(repo, work, version):
    debs = make_debs(work / f"debs-{version.split(':')[1]}", version)
    ok([sys.executable, PKG / "build_repo.py", "--debs", debs, "--out", repo, "--codename", "bookworm",
        "--key-dir", work / "key"])


class Apt:
    """apt-get/apt-cache in a throwaway root: its own sources, lists, status and preferences."""

    def __init__(self, root):
        self.root = root
        for d in ("state/lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "status").write_text("")
        (root / "apt.conf").write_text(f'Dir::Etc::parts "{root}/etc/apt.conf.d";\nDir::Etc::main "/dev/null";\n')

    def sources(self, *lines):
        (self.root / "sources.list").write_text("".join(lines))

    def installed(self, version):
        """The dpkg status of a host with every stand-in installed at version."""
        self.root.joinpath("status").write_text("\n".join(
            control(name, version).replace("Package:", "Status: install ok installed\nPackage:", 1)
            for name in PACKAGES))

    def __call__(self, *args):
        opts = [f"-oDir::Etc::sourcelist={self.root}/sources.list", "-oDir::Etc::SourceParts=/dev/null",
                f"-oDir::State={self.root}/state", f"-oDir::State::status={self.root}/status",
                f"-oDir::Cache={self.root}/cache", "-oDir::Etc::Preferences=/dev/null",
                f"-oDir::Etc::PreferencesParts={self.root}/etc/preferences.d", "-oDebug::NoLocking=1",
                "-oAPT::Sandbox::User=root", "-oAPT::Architecture=amd64", "-oAPT::Architectures::=amd64"]
        env = dict(os.environ, APT_CONFIG=str(self.root / "apt.conf"), LC_ALL="C")
        return ok([args[0], *opts, *args[1:]], cwd=self.root, env=env)

    def policy(self, package="qemu-system-x86"):
        return self("apt-cache", "policy", package)


def inst_lines(simulation):
    """{package: version} of the Inst lines of `apt-get -s`."""
    return dict(re.findall(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) ", simulation, re.M))


def make_world(work):
    """Debian's bookworm (a binNMU of deb12u18) and our repository (+vhostblk3), apt updated."""
    debian, ours = work / "debian", work / "ours"
    debian_suite(debian, "bookworm", BINNMU, work)
    publish_ours(ours, work, OURS)
    pref = ours / aptpin.PIN_FILE_NAME
    assert pref.read_text() == aptpin.pin_text()
    apt = Apt(work / "apt")
    shutil.copy2(pref, apt.root / "etc" / "preferences.d" / pref.name)
    lines = [f"deb [trusted=yes] file:{debian} bookworm main\n",
             f"deb [signed-by={ours / KEYRING_NAME}] file:{ours} bookworm main\n"]
    apt.sources(*lines)
    apt("apt-get", "update")
    return {"work": work, "debian": debian, "ours": ours, "apt": apt, "lines": lines}


def add_security(world):
    debian_suite(world["debian"], "bookworm-security", SECURITY, world["work"])
    world["apt"].sources(*world["lines"], f"deb [trusted=yes] file:{world['debian']} bookworm-security main\n")
    world["apt"]("apt-get", "update")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One host's history, in test order: our build installed, Debian's fix, our rebuild."""
    return make_world(tmp_path_factory.mktemp("aptpin"))


def test_our_build_beats_the_debian_version_it_was_built_from(world):
    apt = world["apt"]
    policy = apt.policy()
    assert f"Candidate: {OURS}\n" in policy, policy
    assert re.search(rf"^     {re.escape(OURS)} {aptpin.PIN_PRIORITY}$", policy, re.M), policy
    assert re.search(rf"^     {re.escape(BINNMU)} 500$", policy, re.M), policy
    sim = apt("apt-get", "-s", "install", "qemu-system-x86", "qemu-block-extra", "qemu-system-gui")
    assert inst_lines(sim) == {name: OURS for name in PACKAGES}, sim
    facts = upd.update_facts(upd.parse_policy(policy))
    assert facts == {"installed_version": None, "candidate_version": OURS, "patched_installed": False,
                     "patched_available": OURS, "debian_candidate": BINNMU, "newer_upstream": False}


def test_a_debian_security_update_replaces_our_build_and_nothing_is_kept_back(world):
    apt = world["apt"]
    apt.installed(OURS)
    add_security(world)
    policy = apt.policy()
    assert f"Installed: {OURS}\n" in policy and f"Candidate: {SECURITY}\n" in policy, policy
    facts = upd.update_facts(upd.parse_policy(policy))
    assert facts["patched_installed"] is True and facts["newer_upstream"] is True, facts
    assert facts["debian_candidate"] == SECURITY and facts["patched_available"] == OURS, facts
    for command in ("upgrade", "dist-upgrade"):
        sim = apt("apt-get", "-s", command)
        assert inst_lines(sim) == {name: SECURITY for name in PACKAGES}, sim
        assert "kept back" not in sim and re.search(r"^4 upgraded, 0 newly installed, 0 to remove and 0 not upgraded",
                                                    sim, re.M), sim


def test_a_rebuild_on_the_new_debian_version_wins_again(world):
    apt = world["apt"]
    apt.installed(SECURITY)  # the host took Debian's fix meanwhile
    publish_ours(world["ours"], world["work"], REBUILT)
    apt("apt-get", "update")
    policy = apt.policy()
    assert f"Candidate: {REBUILT}\n" in policy, policy
    facts = upd.update_facts(upd.parse_policy(policy))
    assert facts["patched_installed"] is False and facts["newer_upstream"] is False, facts
    assert facts["patched_available"] == REBUILT and facts["debian_candidate"] == SECURITY, facts
    sim = apt("apt-get", "-s", "upgrade")
    assert inst_lines(sim) == {name: REBUILT for name in PACKAGES}, sim
    assert "kept back" not in sim, sim


@pytest.mark.parametrize("default_release, candidate", [
    ("bookworm", OURS),  # bookworm-security stays at 500: no security update, for Debian's QEMU neither
    ("/^bookworm(-security|-updates)?$/", SECURITY),
])
def test_default_release_moves_every_suite_it_names_to_990(tmp_path, default_release, candidate):
    world = make_world(tmp_path)
    apt = world["apt"]
    apt.installed(OURS)
    add_security(world)
    (apt.root / "etc" / "apt.conf.d" / "10default-release").write_text(
        f'APT::Default-Release "{default_release}";\n')
    policy = apt.policy()
    assert f"Candidate: {candidate}\n" in policy, policy
    assert re.search(rf"^ \*\*\* {re.escape(OURS)} 990$", policy, re.M), policy
