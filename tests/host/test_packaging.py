# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the packages and the signed local repository, and check them without a VM.

Builds vhost-blk-dkms and a prebuilt vhost-blk-modules-<krel> for the host's Debian 12 (6.1)
headers, inspects both with dpkg-deb, runs lintian on the DKMS package, checks the depmod rule
that makes the prebuilt module win, builds the repository with a throwaway signing key, checks
the signatures with gpgv and lets apt (private state and cache directories, nothing system-wide)
update from the file: repository, reject a wrong key and honour the QEMU pin.
"""

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "packaging"
sys.path.insert(0, str(PKG))
sys.path.insert(0, str(REPO / "tools"))

import aptpin  # noqa: E402
import pkgcommon  # noqa: E402
from debtools import ok, run  # noqa: E402
from repokey import KEYRING_NAME, RepoKey  # noqa: E402

VERSION = (REPO / "kmod-src" / "VERSION").read_text().strip()
SUITE = "bookworm"
# dkms.conf's BUILD_EXCLUSIVE_KERNEL: Debian 12, Debian 13 and bookworm-backports kernels build,
# anything before 6.1 is skipped
SUPPORTED_KERNELS = ("6.1.0-56-amd64", "6.12.95+deb12-amd64", "6.12.48+deb13-amd64", "6.12.12+bpo-amd64")
UNSUPPORTED_KERNELS = ("5.10.0-30-amd64", "6.0.0-1-amd64")
PROBE = "vhostblk-pin-probe"

for tool in ("dpkg-buildpackage", "dh_dkms", "lintian", "gpg", "gpgv", "apt-get", "mke2fs", "debugfs", "depmod"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed (packaging needs debhelper, dh-dkms, lintian, gnupg, "
                    "e2fsprogs, kmod)", allow_module_level=True)


def headers_61():
    trees = sorted(p for p in Path("/usr/src").glob("linux-headers-6.1.*-amd64") if (p / "Makefile").is_file())
    return trees[-1] if trees else None


def fields(deb):
    text = ok(["dpkg-deb", "--field", deb])
    out, key = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and key:
            out[key] += "\n" + line
        else:
            key, _sep, val = line.partition(":")
            out[key] = val.strip()
    return out


def contents(deb):
    """{path: mode string} from dpkg-deb -c, paths without the leading '.'."""
    out = {}
    for line in ok(["dpkg-deb", "-c", deb]).splitlines():
        parts = line.split()
        out[parts[5][1:]] = parts[0]
    return out


def udev_assignments(rule_text):
    """{key: value} of the one rule line (KERNEL==, GROUP=, ...); comments left out."""
    lines = [ln for ln in rule_text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1, lines
    return {k + op: v for k, op, v in re.findall(r'([A-Z]+)(==|=)"([^"]*)"', lines[0])}


def check_device_files(deb, package, x):
    """The udev rule (root:kvm 0660 for the module's device) and the modules-load.d entry."""
    files = contents(deb)
    paths = sorted(pkgcommon.device_files(package))
    assert [p for p in paths if f"/{p}" in files] == paths, sorted(files)
    rule, load = (x / p for p in paths)
    uapi = (REPO / "kmod-src/include/uapi/linux/vhost_blk.h").read_text()
    device = re.search(r'#define VHOST_BLK_DEVICE_NAME\s+"([^"]+)"', uapi).group(1)
    assert udev_assignments(rule.read_text()) == {"KERNEL==": device, "SUBSYSTEM==": "misc", "GROUP=": "kvm",
                                                  "MODE=": "0660"}
    entries = [ln.strip() for ln in load.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return entries


def probe_deb(out, version, name=PROBE):
    root = out / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\n"
        "Description: pin probe\n stands in for a QEMU package in the pin test\n")
    deb = out / f"{name}_{version}_all.deb"
    ok(["dpkg-deb", "--root-owner-group", "--build", root, deb])
    shutil.rmtree(root)
    return deb


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="module")
def dkms_deb(work):
    out = work / "debs"
    ok([sys.executable, PKG / "build_dkms_deb.py", "--out", out])
    debs = list(out.glob(f"vhost-blk-dkms_{VERSION}_all.deb"))
    assert len(debs) == 1, list(out.iterdir())
    return debs[0]


@pytest.fixture(scope="module")
def tools_deb(dkms_deb):
    debs = list(dkms_deb.parent.glob(f"vhost-blk-tools_{VERSION}_all.deb"))
    assert len(debs) == 1, list(dkms_deb.parent.iterdir())
    return debs[0]


@pytest.fixture(scope="module")
def kmod_deb(work):
    headers = headers_61()
    if headers is None:
        pytest.skip("no Debian 12 kernel headers (/usr/src/linux-headers-6.1.*-amd64): "
                    "install linux-headers-6.1.0-<abi>-amd64 to build the prebuilt module package")
    krel = headers.name[len("linux-headers-"):]
    out = work / "debs"
    ok([sys.executable, PKG / "build_kmod_deb.py", "--kernel", krel, "--headers", headers, "--out", out,
        "--key-dir", work / "module-key"])  # a throwaway module signing key
    debs = list(out.glob(f"vhost-blk-modules-{krel}_*_amd64.deb"))
    assert len(debs) == 1, list(out.iterdir())
    return krel, debs[0]


@pytest.fixture(scope="module")
def repo(work, dkms_deb, kmod_deb):
    probes = work / "probes"
    probes.mkdir()
    probe_deb(probes, "1.0+vhostblk1")
    probe_deb(probes, "2.0")
    probe_deb(probes, "1.0+vhostblk1", name=f"{PROBE}-dbgsym")
    out = work / "repo"
    key_dir = work / "key"
    ok([sys.executable, PKG / "build_repo.py", "--debs", dkms_deb.parent, probes, "--out", out,
        "--key-dir", key_dir, "--disk-image", work / "repo.img"])
    return out, key_dir


def apt(work, name, sources_line, args, prefs=None):
    """Run apt-get/apt-cache with private state, cache and sources (nothing under /etc or /var)."""
    root = work / f"apt-{name}"
    for d in ("state/lists/partial", "cache/archives/partial", "etc/preferences.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "sources.list").write_text(sources_line)
    if prefs:
        shutil.copy2(prefs, root / "etc" / "preferences.d" / prefs.name)
    opts = [f"-oDir::Etc::sourcelist={root}/etc/sources.list", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State={root}/state", f"-oDir::Cache={root}/cache",
            "-oDir::Etc::Preferences=/dev/null", f"-oDir::Etc::PreferencesParts={root}/etc/preferences.d",
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root"]
    return run([args[0], *opts, *args[1:]])


def sources(repo_dir, keyring):
    return f"deb [signed-by={keyring}] file:{repo_dir} {SUITE} main\n"


# ---- the DKMS package ---------------------------------------------------------------------

def test_dkms_deb_control(dkms_deb):
    f = fields(dkms_deb)
    assert f["Package"] == "vhost-blk-dkms"
    assert f["Version"] == VERSION
    assert f["Architecture"] == "all"
    depends = [d.strip().split()[0] for d in f["Depends"].split(",")]
    assert "dkms" in depends
    assert f["Recommends"] == f"vhost-blk-tools (= {VERSION})"


def test_dkms_deb_contents(dkms_deb, work):
    files = contents(dkms_deb)
    src = f"/usr/src/vhost-blk-{VERSION}"
    for path in ("dkms.conf", "Kbuild", "Makefile", "VERSION", "main.c", "vblk.h",
                 "include/uapi/linux/vhost_blk.h"):
        assert f"{src}/{path}" in files, path
    tools = [p for p in files if p.startswith(("/usr/lib/vhost-blk/", "/usr/sbin/"))]
    assert not tools, f"these belong to vhost-blk-tools: {tools}"
    assert not [p for p in files if re.search(r"\.(o|ko|pyc|in)$|__pycache__|\.cmd$", p)]

    x = work / "dkms-x"
    ok(["dpkg-deb", "-x", dkms_deb, x])
    conf = (x / src.lstrip("/") / "dkms.conf").read_text()
    assert f'PACKAGE_VERSION="{VERSION}"' in conf and "@" not in conf
    assert 'BUILT_MODULE_NAME[0]="vhost_blk"' in conf
    header = x / src.lstrip("/") / "include/uapi/linux/vhost_blk.h"
    assert header.read_bytes() == (REPO / "kmod-src/include/uapi/linux/vhost_blk.h").read_bytes()
    # the maintainer scripts from dh_dkms register and remove exactly this version
    scripts = ok(["dpkg-deb", "-I", dkms_deb, "postinst"]) + ok(["dpkg-deb", "-I", dkms_deb, "prerm"])
    assert "DKMS_NAME=vhost-blk" in scripts and f"DKMS_VERSION={VERSION}" in scripts
    assert check_device_files(dkms_deb, "vhost-blk-dkms", x) == [re.search(
        r'^BUILT_MODULE_NAME\[0\]="(\S+)"$', conf, re.M).group(1)]


def test_dkms_skips_unsupported_kernels(dkms_deb, work):
    """dkms itself (private trees, no headers, signing off) reads the packaged dkms.conf: kernels
    before 6.1 end in its 'skipped' status 77, supported ones get past that check (and stop at
    the missing headers), so `dkms autoinstall` in a kernel package's configure skips cleanly."""
    assert shutil.which("dkms"), "dkms not installed (./dev setup)"
    x = work / "dkms-exclusive-x"
    ok(["dpkg-deb", "-x", dkms_deb, x])
    assert re.search(r"^BUILD_EXCLUSIVE_KERNEL=", (x / f"usr/src/vhost-blk-{VERSION}/dkms.conf").read_text(), re.M)
    trees = ["--sourcetree", x / "usr/src", "--dkmstree", work / "dkms-tree"]
    (work / "dkms-tree").mkdir()
    env = dict(os.environ, sign_file=str(work / "no-sign-file"))  # no MOK key made in /var/lib/dkms
    ok(["dkms", "add", "-m", "vhost-blk", "-v", VERSION, *trees], env=env)
    for krel in SUPPORTED_KERNELS + UNSUPPORTED_KERNELS:
        res = run(["dkms", "build", "-m", "vhost-blk", "-v", VERSION, "-k", krel, *trees,
                   "--kernelsourcedir", work / "no-headers"], env=env)
        out = res.stdout + res.stderr
        if krel in UNSUPPORTED_KERNELS:
            assert res.returncode == 77 and "BUILD_EXCLUSIVE" in out, f"{krel}: rc={res.returncode}\n{out}"
        else:
            assert res.returncode not in (0, 77) and "BUILD_EXCLUSIVE" not in out, f"{krel}: rc={res.returncode}\n{out}"
            assert "kernel headers" in out, f"{krel}: stopped before the headers check\n{out}"


def test_tools_deb_contents(tools_deb, work):
    f = fields(tools_deb)
    assert f["Package"] == "vhost-blk-tools" and f["Architecture"] == "all" and "python3" in f["Depends"]
    files = contents(tools_deb)
    for path in ("__main__.py", "abi.py", "cli.py", "selftest.py", "vu_daemon.py", "vu_session.py"):
        assert f"/usr/lib/vhost-blk/vhostblk/{path}" in files, path
    for exe in ("/usr/sbin/vhost-blk-selftest", "/usr/sbin/vhost-blk-user"):
        assert files[exe].startswith("-rwxr-xr-x"), exe
    for path in ("/lib/systemd/system/vhost-blk-user@.service", "/usr/lib/sysusers.d/vhost-blk-tools.conf",
                 "/usr/lib/tmpfiles.d/vhost-blk-tools.conf", "/usr/share/man/man8/vhost-blk-user.8.gz"):
        assert path in files, path
    x = work / "tools-x"
    ok(["dpkg-deb", "-x", tools_deb, x])
    assert (x / "usr/lib/vhost-blk/vhost_blk.h").read_bytes() == \
        (REPO / "kmod-src/include/uapi/linux/vhost_blk.h").read_bytes()
    for exe in ("vhost-blk-selftest", "vhost-blk-user"):
        ok(["sh", "-n", x / "usr/sbin" / exe])
    unit = (x / "lib/systemd/system/vhost-blk-user@.service").read_text()
    for line in ("User=vhost-blk", "NoNewPrivileges=yes", "DevicePolicy=closed", "DeviceAllow=/dev/vhost-blk rw",
                 "SupplementaryGroups=kvm", "RuntimeDirectory=vhost-blk"):
        assert line in unit, line
    # the user exists before tmpfiles hands /run/vhost-blk to it
    postinst = ok(["dpkg-deb", "-I", tools_deb, "postinst"])
    assert 0 <= postinst.index("systemd-sysusers") < postinst.index("systemd-tmpfiles")
    # the wrapper runs the daemon from where the package puts it
    wrapper = (x / "usr/sbin/vhost-blk-user").read_text().replace("/usr/lib/vhost-blk", str(x / "usr/lib/vhost-blk"))
    res = run(["sh", "-c", wrapper, "vhost-blk-user", "--help"])
    assert res.returncode == 0 and "--backing" in res.stdout, res.stdout + res.stderr


def test_exerciser_searches_where_the_packages_put_the_header(dkms_deb, tools_deb):
    from vhostblk import abi
    pattern = f"/usr/src/vhost-blk-*/{abi.HEADER_REL}"
    assert [p for p in contents(dkms_deb) if fnmatch.fnmatch(p, pattern)], pattern
    assert "/usr/lib/vhost-blk/vhost_blk.h" in contents(tools_deb)
    text = Path(abi.__file__).read_text()
    assert "/usr/src/vhost-blk-*" in text and "/usr/lib/vhost-blk/vhost_blk.h" in text


def test_debs_are_lintian_clean(dkms_deb, tools_deb, kmod_deb):
    res = run(["lintian", "--fail-on", "error,warning", dkms_deb, tools_deb, kmod_deb[1]])
    tags = [ln for ln in res.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
    assert res.returncode == 0 and not tags, res.stdout + res.stderr


def test_build_leaves_no_generated_files_in_the_tree(dkms_deb):
    assert not (REPO / "kmod-src" / "dkms.conf").exists() or \
        run(["git", "-C", REPO, "ls-files", "--error-unmatch", "kmod-src/dkms.conf"]).returncode != 0
    tracked = ok(["git", "-C", REPO, "ls-files", "packaging"]).split()
    assert not [t for t in tracked if re.search(r"changelog$|dkms\.conf$|\.deb$", t)], tracked


# ---- the prebuilt module package ----------------------------------------------------------

def test_kmod_deb_control(kmod_deb):
    krel, deb = kmod_deb
    f = fields(deb)
    assert f["Package"] == f"vhost-blk-modules-{krel}"
    assert f["Version"].startswith(f"{VERSION}+k")
    assert f["Architecture"] == "amd64"
    assert f"linux-image-{krel}" in [a.strip() for a in re.split(r"[,|]", f["Depends"])]
    assert f["Provides"].startswith("vhost-blk-modules")


def test_kmod_deb_contents_and_module(kmod_deb, work):
    krel, deb = kmod_deb
    files = contents(deb)
    ko = f"/lib/modules/{krel}/updates/vhost_blk.ko"
    assert ko in files
    assert f"/etc/depmod.d/vhost-blk-{krel}.conf" in files
    x = work / "kmod-x"
    ok(["dpkg-deb", "-x", deb, x])
    assert ok(["modinfo", "-F", "vermagic", x / ko.lstrip("/")]).split()[0] == krel
    assert ok(["modinfo", "-F", "version", x / ko.lstrip("/")]).strip() == VERSION
    for script in ("postinst", "postrm"):
        text = ok(["dpkg-deb", "-I", deb, script])
        assert f"KREL={krel}" in text and 'depmod -a "$KREL"' in text
    assert ok(["dpkg-deb", "-I", deb, "conffiles"]).strip() == f"/etc/depmod.d/vhost-blk-{krel}.conf"
    module = ok(["modinfo", "-F", "name", x / ko.lstrip("/")]).strip()
    assert check_device_files(deb, f"vhost-blk-modules-{krel}", x) == [module]


def test_module_packages_share_no_file(dkms_deb, kmod_deb):
    """Both may be installed on one host (dpkg refuses two packages owning one path)."""
    shared = {p for p, mode in contents(dkms_deb).items() if not mode.startswith("d")} & set(contents(kmod_deb[1]))
    assert not shared, shared


def _depmod_winner(work, name, deb, krel, with_override):
    base = work / name
    mods = base / "lib/modules" / krel / "updates"
    (mods / "dkms").mkdir(parents=True)
    x = work / f"{name}-x"
    ok(["dpkg-deb", "-x", deb, x])
    ko = x / "lib/modules" / krel / "updates/vhost_blk.ko"
    shutil.copy2(ko, mods / "vhost_blk.ko")
    shutil.copy2(ko, mods / "dkms" / "vhost_blk.ko")
    conf = work / f"{name}-conf"
    conf.mkdir()
    # the worst case for us: a configuration that ranks DKMS's directory first
    (conf / "search.conf").write_text("search updates/dkms updates built-in\n")
    if with_override:
        shutil.copy2(x / "etc/depmod.d" / f"vhost-blk-{krel}.conf", conf)
    ok(["depmod", "-b", base, "-C", conf, krel])
    dep = (base / "lib/modules" / krel / "modules.dep").read_text()
    return [ln.split(":")[0] for ln in dep.splitlines() if "vhost_blk" in ln]


def test_prebuilt_module_wins_over_dkms_for_its_kernel(kmod_deb, work):
    krel, deb = kmod_deb
    assert _depmod_winner(work, "depmod-ours", deb, krel, True) == ["updates/vhost_blk.ko"]
    # the override is what decides: without it this configuration picks DKMS's copy
    assert _depmod_winner(work, "depmod-plain", deb, krel, False) == ["updates/dkms/vhost_blk.ko"]


# ---- the repository -----------------------------------------------------------------------

def test_release_is_signed(repo):
    out, key_dir = repo
    dist = out / "dists" / SUITE
    keyring = out / KEYRING_NAME
    assert keyring.read_bytes() == (key_dir / KEYRING_NAME).read_bytes()
    ok(["gpgv", "--keyring", keyring, dist / "InRelease"])
    ok(["gpgv", "--keyring", keyring, dist / "Release.gpg", dist / "Release"])
    tampered = out.parent / "Release.tampered"
    tampered.write_text((dist / "Release").read_text().replace("Origin:", "Origin: x"))
    assert run(["gpgv", "--keyring", keyring, dist / "Release.gpg", tampered]).returncode != 0
    release = (dist / "Release").read_text()
    assert re.search(r"^SHA256:\n .* main/binary-amd64/Packages$", release, re.M | re.S)


def test_signing_key_is_reused(repo, work):
    out, key_dir = repo
    first = (key_dir / "fingerprint").read_text().strip()
    assert RepoKey(key_dir).ensure() == first


def test_packages_index_lists_both_packages(repo, kmod_deb):
    out, _meta = repo
    packages = (out / "dists" / SUITE / "main/binary-amd64/Packages").read_text()
    assert f"Package: vhost-blk-dkms\nSource: vhost-blk\nVersion: {VERSION}\n" in packages
    assert f"Package: vhost-blk-tools\nSource: vhost-blk\nVersion: {VERSION}\n" in packages
    assert f"Package: vhost-blk-modules-{kmod_deb[0]}\n" in packages
    assert f"Package: {PROBE}\n" in packages and "-dbgsym" not in packages
    for m in re.finditer(r"^Filename: (\S+)$", packages, re.M):
        assert (out / m.group(1)).is_file()


def test_apt_updates_from_the_file_repository(repo, work, kmod_deb):
    out, _meta = repo
    line = sources(out, out / KEYRING_NAME)
    res = apt(work, "good", line, ["apt-get", "update"])
    assert res.returncode == 0 and "W:" not in res.stdout + res.stderr, res.stdout + res.stderr
    policy = apt(work, "good", line, ["apt-cache", "policy", "vhost-blk-dkms", f"vhost-blk-modules-{kmod_deb[0]}"])
    assert policy.returncode == 0
    assert re.search(rf"vhost-blk-dkms:\n(.*\n)*?  Candidate: {re.escape(VERSION)}\n", policy.stdout), policy.stdout
    assert f"file:{out} {SUITE}/main amd64 Packages" in policy.stdout
    assert re.search(rf"Candidate: {re.escape(VERSION)}\+k", policy.stdout), policy.stdout


def test_apt_rejects_the_repository_with_another_key(repo, work):
    out, _meta = repo
    other = RepoKey(work / "other-key")
    other.ensure()
    res = apt(work, "bad", sources(out, other.keyring), ["apt-get", "update"])
    assert res.returncode != 0 or "NO_PUBKEY" in res.stderr, res.stdout + res.stderr
    assert "NO_PUBKEY" in res.stdout + res.stderr
    policy = apt(work, "bad", sources(out, other.keyring), ["apt-cache", "policy", "vhost-blk-dkms"])
    assert "Candidate:" not in policy.stdout


def test_qemu_pin_is_by_origin_at_debians_priority(repo, work):
    """The pin matches the Origin of our Release: apt lists our versions at 500 with it (the version
    decides between ours and Debian's; tests/host/test_aptpin.py checks that with Debian suites)."""
    out, _meta = repo
    pref = out / aptpin.PIN_FILE_NAME
    assert pref.is_file(), "build_repo.py writes the pin when the repository has +vhostblk versions"
    assert pref.read_text() == aptpin.pin_text()
    line = sources(out, out / KEYRING_NAME)
    assert apt(work, "pin", line, ["apt-get", "update"]).returncode == 0
    pinned = apt(work, "pin", line, ["apt-cache", "policy", PROBE], prefs=pref).stdout
    assert "Candidate: 2.0\n" in pinned, pinned
    assert re.search(r"^     1\.0\+vhostblk1 500$", pinned, re.M), pinned
    assert re.search(r"^     2\.0 500$", pinned, re.M), pinned
    # 500 is also apt's default: a copy at 600 shows the origin expression matches our Release
    (work / "raised.pref").write_text(pref.read_text().replace("Pin-Priority: 500", "Pin-Priority: 600"))
    assert apt(work, "pin-raised", line, ["apt-get", "update"]).returncode == 0
    raised = apt(work, "pin-raised", line, ["apt-cache", "policy", PROBE], prefs=work / "raised.pref").stdout
    assert re.search(r"^     2\.0 600$", raised, re.M), raised


def test_disk_image_holds_the_repository(repo, work):
    out, _meta = repo
    img = work / "repo.img"
    listing = ok(["debugfs", "-R", f"ls -p /dists/{SUITE}", img])
    for name in ("InRelease", "Release", "Release.gpg"):
        assert f"/{name}/" in listing, listing
    inrelease = ok(["debugfs", "-R", f"cat /dists/{SUITE}/InRelease", img])
    assert inrelease == (out / "dists" / SUITE / "InRelease").read_text()
    assert "/vhostblk-local.gpg/" in ok(["debugfs", "-R", "ls -p /", img])
    assert os.path.getsize(img) < 64 << 20


HOLDER = """
import sys, time
sys.path.insert(0, {pkg!r})
import pkgcommon
with pkgcommon.locked({lock!r}):
    start = time.monotonic()
    print("in", flush=True)
    time.sleep(1.0)
    print(f"{{start}} {{time.monotonic()}}", flush=True)
"""


def test_cache_lock_serialises_two_runs(tmp_path):
    """Two runs building the same cache entry take turns (pkgcommon.locked): the second one
    enters only after the first one left."""
    code = HOLDER.format(pkg=str(PKG), lock=str(tmp_path / "entry" / ".lock"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _i in range(2)]
    spans = sorted(tuple(map(float, p.communicate(timeout=30)[0].split()[-2:])) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert spans[1][0] >= spans[0][1], f"both runs held the lock at once: {spans}"
