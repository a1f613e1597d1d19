#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build Debian's QEMU with our vhost-blk patch series as a local version (+vhostblkN).

    python3 packaging/build_qemu.py --qemu 7.2 [--x86-only] [--no-microvm] [--jobs 2]

Steps (each one timed, summary in <out>/build-qemu-<ver>.json):
  1. `apt-get source` of Debian's qemu (7.2: bookworm) into <workdir>/src (a fixed path, so
     ccache hits survive between runs);
  2. our qemu-patches/<ver>/ series goes to debian/patches/vhostblk/ and is appended to
     debian/patches/series; the whole quilt series is pushed (fails early on conflicts);
  3. changelog: the Debian version + `+vhostblkN`, N from qemu-patches/<ver>/local-version, which
     qemu_local_version.py bumps on every change of the series or of this script (no git
     needed): e.g. 1:7.2+dfsg-7+deb12u18+vhostblk8;
  4. --x86-only: a build profile pkg.vhostblk.x86only is added to debian/control and
     debian/rules: the non-x86 system packages, qemu-user* and qemu-system-xen are dropped and
     the main build configures only i386-softmmu,x86_64-softmmu. Everything else (features,
     modules, tools, docs, microvm unless --no-microvm) is Debian's own recipe;
  5. `dpkg-buildpackage -B` (architecture-dependent packages only; qemu-system-data, which is
     arch:all firmware, is taken from Debian) with ccache in <cache>/ccache;
  6. only after a successful build: <out>/qemu-<ver>-<hash>.built (--print-marker prints its
     path), the marker the build role's `creates:` waits for.

Needs the build dependencies: `apt-get build-dep --arch-only qemu/bookworm` plus ccache, quilt,
devscripts. Run as root or a user that may write <workdir>.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by path (tests/devtools)
import pkgcommon  # noqa: E402
import qemu_local_version  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PATCH_ROOT = REPO / "qemu-patches"
CACHE = Path(os.environ.get("VHOSTBLK_CACHE", "/var/cache/vhostblk-fleet"))

# qemu-patches/<ver> -> apt source spec of the Debian package the series is made for
SOURCES = {"7.2": "qemu/bookworm", "10.0": "qemu/trixie"}
PROFILE_X86 = "pkg.vhostblk.x86only"
PROFILE_NOMICROVM = "pkg.vhostblk.nomicrovm"
# binary packages kept by the x86-only profile (7.2 layout)
X86_KEEP = {
    "qemu-system",  # metapackage; d/rules enables the system build only when it is built
    "qemu-system-common",
    "qemu-system-data",
    "qemu-system-gui",
    "qemu-system-x86",
    "qemu-block-extra",
    "qemu-utils",
    "qemu-guest-agent",
}

RULES_TARGETS_7_2 = """
# vhost-blk fleet: x86-only build (build profile pkg.vhostblk.x86only)
ifneq (,$(filter pkg.vhostblk.x86only,${DEB_BUILD_PROFILES}))
ifeq (${enable_system},enable)
system_targets = i386 x86_64
sys_systems = x86
systems = x86
QEMU_CONFIGURE_OPTIONS += --target-list=i386-softmmu,x86_64-softmmu
endif
endif
"""

RULES_BUILDS_7_2 = """
# vhost-blk fleet: no xen build (and no microvm build with pkg.vhostblk.nomicrovm)
ifneq (,$(filter pkg.vhostblk.x86only,${DEB_BUILD_PROFILES}))
qemu-builds := $(filter-out xen,${qemu-builds})
endif
ifneq (,$(filter pkg.vhostblk.nomicrovm,${DEB_BUILD_PROFILES}))
qemu-builds := $(filter-out microvm,${qemu-builds})
endif
"""


class StepTimer:
    def __init__(self):
        self.steps = []

    def run(self, name, func, *args, **kwargs):
        print(f"==> {name}", flush=True)
        t0 = time.monotonic()
        try:
            return func(*args, **kwargs)
        finally:
            secs = round(time.monotonic() - t0, 1)
            self.steps.append({"step": name, "seconds": secs})
            print(f"<== {name}: {secs} s", flush=True)


def sh(cmd, cwd=None, env=None, log=None):
    """Run a command; stream to the log file if given; raise with the tail of the log on failure."""
    print("+ " + " ".join(str(c) for c in cmd), flush=True)
    if log is None:
        subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, check=True)
        return
    with open(log, "ab") as fh:
        res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if res.returncode:
        tail = Path(log).read_bytes()[-4000:].decode(errors="replace")
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n--- tail of {log}:\n{tail}")


def read_series(version):
    series = PATCH_ROOT / version / "series"
    names = [ln.split()[0] for ln in series.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not names:
        raise SystemExit(f"{series}: empty")
    return names


def fetch_source(spec, workdir, log):
    """apt-get source into workdir/src (replacing an older tree); return the source tree path."""
    src_parent = workdir / "src"
    if src_parent.exists():
        shutil.rmtree(src_parent)
    src_parent.mkdir(parents=True)
    sh(["apt-get", "source", "--only-source", spec], cwd=src_parent, log=log)
    trees = [p for p in src_parent.iterdir() if p.is_dir()]
    if len(trees) != 1:
        raise SystemExit(f"expected one source tree in {src_parent}, found {trees}")
    return trees[0]


def add_our_patches(tree, version, log):
    """Copy our series under debian/patches/vhostblk/ and append it to Debian's series."""
    dest = tree / "debian" / "patches" / "vhostblk"
    dest.mkdir(parents=True, exist_ok=True)
    names = read_series(version)
    for name in names:
        shutil.copy2(PATCH_ROOT / version / name, dest / name)
    series = tree / "debian" / "patches" / "series"
    text = series.read_text()
    if not text.endswith("\n"):
        text += "\n"
    text += "# vhost-blk fleet (qemu-patches/%s)\n" % version
    text += "".join(f"vhostblk/{n}\n" for n in names)
    series.write_text(text)
    env = dict(os.environ, QUILT_PATCHES="debian/patches", QUILT_PC=".pc")
    # dpkg-source -x already applied Debian's own patches; this pushes ours (and fails on fuzz)
    sh(["quilt", "push", "-a", "--fuzz=0"], cwd=tree, env=env, log=log)
    return names


def local_version(tree, names, log, qemu="7.2"):
    env = dict(
        os.environ,
        DEBFULLNAME=os.environ.get("DEBFULLNAME", "vhost-blk fleet"),
        DEBEMAIL=os.environ.get("DEBEMAIL", "dev@vhostblk.invalid"),
    )
    base = subprocess.run(["dpkg-parsechangelog", "-S", "Version"], cwd=tree, capture_output=True, text=True,
                          check=True).stdout.strip()
    suffix, warning = qemu_local_version.local_suffix(PATCH_ROOT / qemu)
    if warning:
        print(f"WARNING: {suffix}: {warning}; do not publish this build", flush=True)
    version = f"{base}{suffix}"
    msg = f"Add the vhost-blk-pci device ({len(names)} patches in debian/patches/vhostblk)"
    sh(["dch", "--newversion", version, "--distribution", "UNRELEASED", msg], cwd=tree, env=env, log=log)
    out = subprocess.run(["dpkg-parsechangelog", "-S", "Version"], cwd=tree, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def control_with_profile(text, keep, profile):
    """Add 'Build-Profiles: <!profile>' to every binary package stanza not in keep."""
    stanzas = text.split("\n\n")
    out = []
    for st in stanzas:
        m = re.search(r"^Package: (\S+)$", st, re.M)
        if m and m.group(1) not in keep:
            if re.search(r"^Build-Profiles:", st, re.M):
                raise SystemExit(f"package {m.group(1)} already has Build-Profiles; extend the script")
            st = re.sub(r"^(Package: \S+)$", rf"\1\nBuild-Profiles: <!{profile}>", st, count=1, flags=re.M)
        out.append(st)
    return "\n\n".join(out)


def insert_before(text, marker, block):
    if text.count(marker) != 1:
        raise SystemExit(f"debian/rules: marker {marker!r} found {text.count(marker)} times")
    return text.replace(marker, block + marker, 1)


def rules_x86_only_7_2(text):
    """The 7.2 debian/rules with the pkg.vhostblk.* profiles wired in."""
    text = insert_before(text, "ifeq (${enable_linux_user},enable)\n\n# list of linux-user targets", RULES_TARGETS_7_2)
    text = insert_before(text, "##############################################\n# common rules", RULES_BUILDS_7_2)
    return text


def apply_x86_only(tree, version):
    if version != "7.2":
        raise SystemExit("--x86-only is implemented for the 7.2 (bookworm) packaging only")
    rules = tree / "debian" / "rules"
    rules.write_text(rules_x86_only_7_2(rules.read_text()))
    # d/rules regenerates d/control from d/control-in when either is newer: edit both, control last
    for name in ("control-in", "control"):
        path = tree / "debian" / name
        if path.exists():
            path.write_text(control_with_profile(path.read_text(), X86_KEEP, PROFILE_X86))


def build(tree, profiles, jobs, use_ccache, niceness, log):
    env = dict(os.environ)
    env["DEB_BUILD_OPTIONS"] = f"parallel={jobs} nocheck"
    if use_ccache and shutil.which("ccache"):
        ccache_dir = CACHE / "ccache"
        ccache_dir.mkdir(parents=True, exist_ok=True)
        env["CCACHE_DIR"] = str(ccache_dir)
        env["CCACHE_BASEDIR"] = str(tree)
        env["CCACHE_MAXSIZE"] = env.get("CCACHE_MAXSIZE", "8G")
        env["PATH"] = "/usr/lib/ccache:" + env["PATH"]
        sh(["ccache", "-z"], env=env, log=log)
    cmd = ["nice", "-n", str(niceness), "dpkg-buildpackage", "-B", "-uc", "-us", f"-j{jobs}"]
    if profiles:
        cmd.append("-P" + ",".join(profiles))
    sh(cmd, cwd=tree, env=env, log=log)
    if use_ccache and shutil.which("ccache"):
        sh(["ccache", "-s"], env=env, log=log)


def collect(tree, out):
    out.mkdir(parents=True, exist_ok=True)
    debs = []
    for f in sorted(tree.parent.iterdir()):
        if f.suffix in (".deb", ".buildinfo", ".changes"):
            shutil.copy2(f, out / f.name)
            if f.suffix == ".deb":
                debs.append(f.name)
    return debs


def built_marker(out, qemu):
    """<out>/qemu-<ver>-<hash>.built: written only after a successful build, named after the
    content of the series and of this script, so a changed series or recipe is built again."""
    return Path(out) / f"qemu-{qemu}-{qemu_local_version.content_hash(PATCH_ROOT / qemu)[:16]}.built"


def _terminated(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminated)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qemu", choices=sorted(SOURCES), default="7.2", help="which patch series / Debian source")
    ap.add_argument("--source", help="apt source spec (default: %s)" % SOURCES)
    ap.add_argument("--workdir", type=Path, default=CACHE / "qemu-build", help="fixed path (ccache hits)")
    ap.add_argument("--out", type=Path, default=REPO / "packaging" / "out" / "qemu")
    ap.add_argument("--x86-only", action="store_true", help="build only the x86 system emulator packages")
    ap.add_argument("--no-microvm", action="store_true", help="also skip the qemu-system-x86_64-microvm build")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-ccache", action="store_true")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the build (shared machines)")
    ap.add_argument("--prepare-only", action="store_true", help="stop after patching the source tree")
    ap.add_argument("--print-marker", action="store_true",
                    help="print the path of the file a successful build of this series leaves in --out, and exit")
    args = ap.parse_args(argv)
    if args.print_marker:
        print(built_marker(args.out, args.qemu))
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    with pkgcommon.locked(args.workdir / ".lock"):  # the tree under workdir is replaced: one run at a time
        return _build(args)


def _build(args):
    log = args.workdir / f"build-qemu-{args.qemu}.log"
    log.write_text("")
    timer = StepTimer()
    spec = args.source or SOURCES[args.qemu]
    tree = timer.run("fetch source", fetch_source, spec, args.workdir, log)
    names = timer.run("apply patches", add_our_patches, tree, args.qemu, log)
    version = timer.run("changelog", local_version, tree, names, log, args.qemu)
    profiles = []
    if args.x86_only:
        timer.run("x86-only profile", apply_x86_only, tree, args.qemu)
        profiles.append(PROFILE_X86)
    if args.no_microvm:
        profiles.append(PROFILE_NOMICROVM)
    summary = {"qemu": args.qemu, "source": spec, "version": version, "tree": str(tree), "profiles": profiles,
               "log": str(log), "result": "prepared" if args.prepare_only else "failed"}
    try:
        if not args.prepare_only:
            timer.run("dpkg-buildpackage", build, tree, profiles, args.jobs, not args.no_ccache, args.nice, log)
            summary["debs"] = timer.run("collect", collect, tree, args.out)
            summary["result"] = "built"
            built_marker(args.out, args.qemu).write_text(version + "\n")
    finally:
        # written also when the build fails or is interrupted: the timings are the point
        summary["steps"] = timer.steps
        summary["total_seconds"] = round(sum(s["seconds"] for s in timer.steps), 1)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"build-qemu-{args.qemu}.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
