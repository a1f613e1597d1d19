#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build a prebuilt per-kernel module package vhost-blk-modules-<kernel release>.

    packaging/build_kmod_deb.py --kernel 6.1.0-56-amd64 [--headers DIR] \
        [--kernel-pkg-version 6.1.192-2] [--key-dir DIR] [--metapackage] --out DIR [--lintian]

dkms 3 has no mkbmdeb any more, so the module is compiled here with
`make -C <headers> M=<temporary copy of kmod-src>` against the pinned headers tree, checked
(vermagic must name the kernel release), stripped of debug info, signed with the fleet's module
key (modkey.py, after stripping) and packaged with dpkg-deb.

Package facts:
  name      vhost-blk-modules-<krel>, Provides: vhost-blk-modules (= <module version>)
  version   <module version>+k<kernel package version with '-' -> '.'>, e.g. 0.1.0+k6.1.192.2
  files     /lib/modules/<krel>/updates/vhost_blk.ko
            /etc/depmod.d/vhost-blk-<krel>.conf   (override: this .ko wins for <krel>)
            /lib/udev/rules.d/60-<name>.rules     /dev/vhost-blk root:kvm 0660
            /usr/lib/modules-load.d/<name>.conf   load the module at boot
  Depends   linux-image-<krel> | linux-image-<krel>-unsigned, kmod, vhost-blk-module-cert (= <cert version>)
  Recommends vhost-blk-tools (>= <module version>)   self-test, vhost-user back end
  Source    vhost-blk (<module version>); Built-Using: linux (= <source version of the headers>)
  scripts   postinst/postrm run depmod -a <krel>

Also written to --out: vhost-blk-module-cert (the signing certificate, DER, for `mokutil
--import`), and with --metapackage vhost-blk-modules-<flavour> (e.g. vhost-blk-modules-amd64 for
6.1.0-56-amd64) depending on this package, as linux-image-amd64 depends on the kernel of the
current ABI: rebuilding the repository for a new ABI moves hosts that installed it forward.

Coexistence with vhost-blk-dkms (no Conflicts, both may be installed): for the kernel this
package is built for, the prebuilt module always wins. DKMS installs to updates/dkms/; the
depmod.d override makes depmod pick updates/vhost_blk.ko for <krel> whatever DKMS did, and
DKMS itself skips installing a module whose version equals the one already present. For every
other kernel DKMS builds as usual. See packaging/README.md.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import modkey
import pkgcommon as pc
import simpledeb

KREL_RE = re.compile(r"^[0-9]+\.[0-9]+[A-Za-z0-9.+~-]*$")
# <version>[-<abi>|+<suffix>]-<flavour>: 6.1.0-56-amd64, 6.12.95+deb12-amd64, 6.1.0-56-cloud-amd64
FLAVOUR_RE = re.compile(r"^[0-9]+\.[0-9]+(?:\.[0-9]+)?(?:-[0-9]+|\+[a-z0-9]+)?-([a-z][a-z0-9-]*)$")


def flavour(krel):
    """The kernel flavour of a release (amd64, cloud-amd64, rt-amd64): linux-image-<flavour> follows its ABI."""
    found = FLAVOUR_RE.match(krel)
    if not found:
        raise SystemExit(f"--kernel {krel!r}: no flavour after the ABI (expected e.g. 6.1.0-56-amd64)")
    return found.group(1)


def package_name(krel):
    return f"{pc.MODULES_PREFIX}-{krel}".lower()


def package_version(mod_version, kernel_pkg_version):
    """0.1.0 + 6.1.192-2 -> 0.1.0+k6.1.192.2 (native: no '-', an epoch is dropped)."""
    kv = kernel_pkg_version.split(":", 1)[-1]
    kv = re.sub(r"[^A-Za-z0-9.+~]", ".", kv)
    return f"{mod_version}+k{kv}"


def kernel_versions(krel):
    """(version, source package, source version) of linux-headers-<krel>: the image has the same
    version; the headers are what the module is built from (Built-Using)."""
    res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}\t${source:Package}\t${source:Version}",
                          f"linux-headers-{krel}"], capture_output=True, text=True, check=False)
    parts = res.stdout.strip().split("\t")
    if res.returncode or len(parts) != 3 or not all(parts):
        raise SystemExit(f"linux-headers-{krel} is not installed: pass --kernel-pkg-version")
    return tuple(parts)


def compile_module(headers, work, jobs):
    src = work / "src"
    pc.copy_module_source(src)
    log = work / "make.log"
    with open(log, "wb") as fh:
        res = subprocess.run(["make", f"-j{jobs}", "-C", str(headers), f"M={src}", "modules"],
                             stdout=fh, stderr=subprocess.STDOUT, check=False)
    if res.returncode:
        raise SystemExit(f"module build failed:\n{log.read_text(errors='replace')[-4000:]}")
    ko = src / f"{pc.MODULE_NAME}.ko"
    if not ko.is_file():
        raise SystemExit(f"build produced no {ko.name}")
    return ko


def field_of(ko, name):
    return pc.run(["modinfo", "-F", name, ko], capture_output=True, text=True).stdout.strip()


def check_module(ko, krel, mod_version):
    def field(name):
        return field_of(ko, name)

    vermagic = field("vermagic")
    if vermagic.split()[0] != krel:
        raise SystemExit(f"{ko.name}: vermagic {vermagic!r} is not for {krel}")
    if field("version") != mod_version:
        raise SystemExit(f"{ko.name}: MODULE_VERSION {field('version')!r} != VERSION {mod_version!r}")
    return vermagic


def control_text(name, version, krel, mod_version, installed_kib, built_using, cert_version):
    return f"""Package: {name}
Source: {pc.SOURCE_NAME} ({mod_version})
Version: {version}
Architecture: amd64
Maintainer: {pc.maintainer()}
Installed-Size: {installed_kib}
Depends: linux-image-{krel} | linux-image-{krel}-unsigned, kmod, {modkey.CERT_PACKAGE} (= {cert_version})
Recommends: {pc.TOOLS_PACKAGE} (>= {mod_version})
Provides: {pc.MODULES_PREFIX} (= {mod_version})
Built-Using: {built_using}
Section: kernel
Priority: optional
Description: vhost_blk kernel module prebuilt for Linux {krel}
 vhost_blk provides /dev/vhost-blk, an in-kernel virtio-blk data path for
 QEMU (like vhost-net for block devices).
 .
 This package holds the module compiled for one kernel only:
 {krel}
 Hosts need neither a compiler nor kernel headers. For that kernel it takes
 precedence over a module built by vhost-blk-dkms (depmod.d override). The
 module is signed with the fleet's key (vhost-blk-module-cert).
"""


def lintian_overrides(name, deb_name):
    """Overrides for what the naming scheme forces on long kernel releases (none usually)."""
    # lintian measures the file name with the architecture replaced by 'kfreebsd-amd64'
    if len(deb_name) - len("amd64") + len("kfreebsd-amd64") <= 80:
        return None
    return ("# The name embeds the kernel release and the version embeds the kernel package\n"
            "# version (both required to tell per-kernel builds apart), e.g. 6.12.95+deb12-amd64 and\n"
            "# 6.12.95-1~bpo12+1; nothing here is meant for the Debian archive's file name limit.\n"
            f"{name}: package-has-long-file-name *\n")


def maint_script(krel, when):
    """postinst (configure) / postrm (remove, purge): refresh the module index of <krel>."""
    cases = "configure" if when == "postinst" else "remove|purge|abort-install|abort-upgrade"
    return f"""#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
set -e
KREL={krel}
case "$1" in
{cases})
    if [ -d "/lib/modules/$KREL/kernel" ] && command -v depmod >/dev/null 2>&1; then
        depmod -a "$KREL"
    fi
    ;;
esac
exit 0
"""


def depmod_conf(krel):
    return (f"# Installed by {package_name(krel)}: for {krel} the prebuilt vhost_blk in updates/\n"
            f"# wins over a DKMS build in updates/dkms/ (see /usr/share/doc/{package_name(krel)}).\n"
            f"override {pc.MODULE_NAME} {krel} updates\n")


def stage(root, ko, krel, name, version, mod_version, epoch, signer, control):
    """signer(module): signs the stripped module in place; control: its fields after the size."""
    moddir = root / "lib" / "modules" / krel / "updates"
    moddir.mkdir(parents=True)
    shutil.copy2(ko, moddir / ko.name)
    pc.run(["strip", "--strip-debug", "--remove-section=.comment", moddir / ko.name])
    signer(moddir / ko.name)
    conf = root / "etc" / "depmod.d" / f"{pc.SOURCE_NAME}-{krel}.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(depmod_conf(krel))
    for path, src in pc.device_files(name).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, root / path)
    overrides = lintian_overrides(name, f"{name}_{version}_amd64.deb")
    if overrides:
        ov = root / "usr" / "share" / "lintian" / "overrides" / name
        ov.parent.mkdir(parents=True)
        ov.write_text(overrides)
    doc = root / "usr" / "share" / "doc" / name
    doc.mkdir(parents=True)
    shutil.copy2(pc.FILES / "dkms" / "copyright", doc / "copyright")
    plain = doc / "changelog"
    plain.write_text(f"{name} ({version}) unstable; urgency=medium\n\n"
                     f"  * vhost_blk {mod_version} built for Linux {krel}.\n\n"
                     f" -- {pc.maintainer()}  {pc.rfc2822(epoch)}\n")
    pc.gzip_file(plain, doc / "changelog.gz")
    plain.unlink()
    for f in root.rglob("*"):
        os.chmod(f, 0o755 if f.is_dir() else 0o644)
        os.utime(f, (epoch, epoch), follow_symlinks=False)

    files = sorted(p for p in root.rglob("*") if p.is_file())
    size_kib = sum((p.stat().st_size + 1023) // 1024 for p in files) + len(files)
    ctl = root / "DEBIAN"
    ctl.mkdir()
    (ctl / "control").write_text(control(size_kib))
    (ctl / "conffiles").write_text(f"/{conf.relative_to(root)}\n")
    (ctl / "md5sums").write_text("".join(
        f"{pc.file_hashes(p)['md5']}  {p.relative_to(root)}\n"
        for p in files if not str(p.relative_to(root)).startswith("etc/")))
    for script in ("postinst", "postrm"):
        (ctl / script).write_text(maint_script(krel, script))
        os.chmod(ctl / script, 0o755)
    for f in ctl.iterdir():
        os.utime(f, (epoch, epoch))


def build_deb(root, out, name, version, epoch):
    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{name}_{version}_amd64.deb"
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    pc.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb], env=env,
           capture_output=True, text=True)
    return deb


def cert_deb(out, key, epoch):
    """vhost-blk-module-cert: the certificate hosts enroll (mokutil --import)."""
    control = {"Package": modkey.CERT_PACKAGE, "Source": f"{pc.SOURCE_NAME} ({pc.module_version()})",
               "Version": key.package_version(), "Architecture": "all", "Section": "kernel",
               "Priority": "optional",
               "Description": "certificate of the key vhost-blk modules are signed with\n"
                              " The X.509 certificate (DER) of the fleet's module signing key, which\n"
                              " signs the prebuilt vhost_blk modules. On a Secure Boot host enroll it\n"
                              " once as a Machine Owner Key, then confirm at the next boot's console:\n"
                              "   mokutil --import /" + modkey.CERT_PATH}
    return simpledeb.build(out, control, {modkey.CERT_PATH: key.cert.read_bytes()}, epoch,
                           f"Module signing certificate of {key.package_version()}.")


def metapackage_deb(out, krel, name, version, mod_version, epoch):
    """vhost-blk-modules-<flavour>: depends on the module package of this kernel's ABI."""
    meta = f"{pc.MODULES_PREFIX}-{flavour(krel)}"
    control = {"Package": meta, "Source": f"{pc.SOURCE_NAME} ({mod_version})", "Version": version,
               "Architecture": "amd64", "Section": "metapackages", "Priority": "optional",
               "Depends": f"{name} (= {version})",
               "Description": f"vhost_blk kernel module for the latest {flavour(krel)} kernel (metapackage)\n"
                              f" Depends on the prebuilt vhost_blk module package of the current Linux\n"
                              f" {flavour(krel)} kernel ABI, as linux-image-{flavour(krel)} depends on that kernel;\n"
                              f" this build: {krel}."}
    return simpledeb.build(out, control, {}, epoch, f"Depends on {name} {version}.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", required=True, help="kernel release, e.g. 6.1.0-56-amd64")
    ap.add_argument("--headers", type=Path, help="headers tree (default /usr/src/linux-headers-<kernel>)")
    ap.add_argument("--kernel-pkg-version", help="Debian version of the kernel packages "
                    "(default: from the installed linux-headers-<kernel>)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--key-dir", type=Path, default=modkey.DEFAULT_KEY_DIR,
                    help=f"module signing key directory (default {modkey.DEFAULT_KEY_DIR}, created on first use)")
    ap.add_argument("--metapackage", action="store_true",
                    help="also build vhost-blk-modules-<flavour> depending on this kernel's package")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lintian", action="store_true", help="also run lintian (reported, not fatal)")
    args = ap.parse_args(argv)

    krel = args.kernel
    if not KREL_RE.match(krel):
        raise SystemExit(f"--kernel {krel!r} does not look like a kernel release")
    headers = args.headers or Path(f"/usr/src/linux-headers-{krel}")
    if not (headers / "Makefile").is_file():
        raise SystemExit(f"{headers}: no kernel headers tree (install linux-headers-{krel})")
    timer = pc.Timer()
    mod_version = pc.module_version()
    if args.kernel_pkg_version:  # headers not installed as a package: Debian's linux source, same version
        kpv, src_name, src_version = args.kernel_pkg_version, "linux", args.kernel_pkg_version
    else:
        kpv, src_name, src_version = kernel_versions(krel)
    name, version = package_name(krel), package_version(mod_version, kpv)
    epoch = pc.source_date_epoch()
    key = modkey.ModuleKey(args.key_dir)
    key.ensure()
    cert_version = key.package_version()

    def control(size_kib):
        return control_text(name, version, krel, mod_version, size_kib, f"{src_name} (= {src_version})",
                            cert_version)

    def signer(module):
        key.sign(module, headers, krel)
        if field_of(module, "sig_key") != key.key_id():
            raise SystemExit(f"{module.name}: not signed with {key.cert} after sign-file")
    work = Path(tempfile.mkdtemp(prefix="pkg-kmoddeb-"))
    try:
        ko = timer("compile", compile_module, headers, work, args.jobs)
        vermagic = check_module(ko, krel, mod_version)
        root = work / "root"
        timer("stage", stage, root, ko, krel, name, version, mod_version, epoch, signer, control)
        deb = timer("dpkg-deb", build_deb, root, args.out, name, version, epoch)
        debs = [deb, cert_deb(args.out, key, epoch)]
        if args.metapackage:
            debs.append(metapackage_deb(args.out, krel, name, version, mod_version, epoch))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {"deb": str(deb), "package": name, "version": version, "kernel": krel,
               "kernel_pkg_version": kpv, "built_using": f"{src_name} (= {src_version})", "vermagic": vermagic,
               "signing_key_id": key.key_id(), "cert_deb": str(debs[1]),
               "metapackage_deb": str(debs[2]) if args.metapackage else None}
    if args.lintian:
        res = subprocess.run(["lintian", "--display-info", *map(str, debs)], capture_output=True, text=True,
                             check=False)
        summary["lintian"] = {"status": res.returncode, "output": (res.stdout + res.stderr).strip()}
    summary["steps"] = timer.steps
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
