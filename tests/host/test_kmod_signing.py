# SPDX-License-Identifier: GPL-2.0-or-later
"""Prebuilt module packages: the module signed with the fleet key (Secure Boot), the certificate
package, Built-Using / Source, the flavour metapackage, lintian.

Builds vhost-blk-modules-<krel> (and vhost-blk-module-cert, vhost-blk-modules-<flavour>) against
the host's Debian 12 6.1 headers with a throwaway key directory, then checks the packaged .ko as
the kernel would: modinfo names our signer and key, and the PKCS#7 signature appended to the
module verifies against the packaged certificate with openssl (and fails once a byte changes).
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "packaging"
sys.path.insert(0, str(PKG))

import build_all  # noqa: E402
import build_kmod_deb  # noqa: E402
import modkey  # noqa: E402
from debtools import ok  # noqa: E402

VERSION = (REPO / "kmod-src" / "VERSION").read_text().strip()
MAGIC = b"~Module signature appended~\n"
SIG_STRUCT = struct.Struct(">BBBBBxxxI")  # struct module_signature: algo, hash, id_type, 2 lengths, pad, sig_len
PKEY_ID_PKCS7 = 2

for tool in ("dpkg-deb", "lintian", "openssl", "modinfo", "strip"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed (./dev setup installs it)", allow_module_level=True)


def headers(pattern):
    trees = sorted(p for p in Path("/usr/src").glob(pattern) if (p / "Makefile").is_file())
    return trees[-1] if trees else None


def field(deb, name):
    return ok(["dpkg-deb", "-f", deb, name]).strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tree = headers("linux-headers-6.1.*-amd64")
    if tree is None:
        pytest.skip("no /usr/src/linux-headers-6.1.*-amd64: install linux-headers-6.1.0-<abi>-amd64")
    krel = tree.name[len("linux-headers-"):]
    work = tmp_path_factory.mktemp("kmodsign")
    key_dir = work / "module-key"
    out = ok([sys.executable, PKG / "build_kmod_deb.py", "--kernel", krel, "--headers", tree, "--out", work / "debs",
              "--key-dir", key_dir, "--metapackage"])
    summary = json.loads(out)
    x = work / "x"
    for deb in (summary["deb"], summary["cert_deb"]):
        ok(["dpkg-deb", "-x", deb, x])
    return {"krel": krel, "headers": tree, "work": work, "key": modkey.ModuleKey(key_dir), "summary": summary,
            "ko": x / f"lib/modules/{krel}/updates/vhost_blk.ko", "cert": x / modkey.CERT_PATH}


def split_signature(data):
    """(signed content, PKCS#7 DER) of a module with an appended signature, as the kernel reads it."""
    assert data.endswith(MAGIC), "no module signature trailer"
    end = len(data) - len(MAGIC)
    algo, hash_, id_type, signer_len, key_id_len, sig_len = SIG_STRUCT.unpack(data[end - SIG_STRUCT.size:end])
    assert (algo, hash_, id_type, signer_len, key_id_len) == (0, 0, PKEY_ID_PKCS7, 0, 0)
    sig_end = end - SIG_STRUCT.size
    return data[:sig_end - sig_len], data[sig_end - sig_len:sig_end]


def cms_verify(work, content, pkcs7, cert_der):
    (work / "content").write_bytes(content)
    (work / "sig.p7").write_bytes(pkcs7)
    pem = work / "cert.pem"
    ok(["openssl", "x509", "-inform", "DER", "-in", cert_der, "-outform", "PEM", "-out", pem])
    # the certificate is the trust anchor (as the kernel's keyring is); the signature carries no certificate
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", work / "sig.p7",
                           "-content", work / "content", "-certfile", pem, "-CAfile", pem, "-purpose", "any",
                           "-out", "/dev/null"], capture_output=True, text=True, check=False)


def test_modinfo_shows_the_fleet_signer(built):
    info = {k: ok(["modinfo", "-F", k, built["ko"]]).strip() for k in ("signer", "sig_key", "sig_hashalgo", "sig_id")}
    assert info["signer"] == modkey.SUBJECT
    assert info["sig_key"] == built["key"].key_id()
    config = (built["headers"] / ".config").read_text()
    assert info["sig_hashalgo"] == re.search(r'^CONFIG_MODULE_SIG_HASH="(\w+)"', config, re.M).group(1)
    assert info["sig_id"] == "PKCS#7"
    # stripped before signing: no debug sections survive in the signed file
    assert ".debug_info" not in ok(["objdump", "-h", built["ko"]])


def test_signature_verifies_against_the_shipped_certificate(built):
    assert built["cert"].read_bytes() == built["key"].cert.read_bytes()
    content, pkcs7 = split_signature(built["ko"].read_bytes())
    res = cms_verify(built["work"], content, pkcs7, built["cert"])
    assert res.returncode == 0 and "Verification successful" in res.stderr, res.stdout + res.stderr


def test_signature_fails_for_a_module_changed_by_one_byte(built):
    content, pkcs7 = split_signature(built["ko"].read_bytes())
    changed = bytearray(content)
    changed[len(changed) // 2] ^= 0x01
    res = cms_verify(built["work"], bytes(changed), pkcs7, built["cert"])
    assert res.returncode == 4 and "content verify error" in res.stderr, res.stderr


def test_signature_fails_against_another_certificate(built, tmp_path):
    other = modkey.ModuleKey(tmp_path / "other-key")
    other.ensure()
    content, pkcs7 = split_signature(built["ko"].read_bytes())
    res = cms_verify(built["work"], content, pkcs7, other.cert)
    assert res.returncode == 4 and "signer certificate not found" in res.stderr, res.stderr


def test_key_is_kept_and_private(built):
    key = built["key"]
    before = key.cert.read_bytes()
    key.ensure()
    assert key.cert.read_bytes() == before
    assert key.key.stat().st_mode & 0o777 == 0o600
    der = ok(["openssl", "x509", "-inform", "DER", "-in", key.cert, "-noout", "-text"])
    assert "CA:FALSE" in der and "Code Signing" in der


def test_control_fields(built):
    s, krel = built["summary"], built["krel"]
    src_version = ok(["dpkg-query", "-W", "-f", "${source:Version}", f"linux-headers-{krel}"]).strip()
    assert field(s["deb"], "Built-Using") == f"linux (= {src_version})"
    assert field(s["deb"], "Source") == f"vhost-blk ({VERSION})"
    assert field(s["deb"], "Recommends") == f"vhost-blk-tools (>= {VERSION})"
    cert_version = field(s["cert_deb"], "Version")
    assert cert_version == built["key"].package_version()
    assert f"{modkey.CERT_PACKAGE} (= {cert_version})" in [d.strip() for d in field(s["deb"], "Depends").split(",")]
    meta = s["metapackage_deb"]
    assert field(meta, "Package") == "vhost-blk-modules-amd64"
    assert field(meta, "Version") == s["version"]
    assert field(meta, "Depends") == f"vhost-blk-modules-{krel} (= {s['version']})"
    assert field(s["cert_deb"], "Architecture") == "all"


def test_debs_are_lintian_clean(built):
    s = built["summary"]
    res = subprocess.run(["lintian", "--fail-on", "error,warning", s["deb"], s["cert_deb"], s["metapackage_deb"]],
                         capture_output=True, text=True, check=False)
    tags = [ln for ln in res.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
    assert res.returncode == 0 and not tags, res.stdout + res.stderr


@pytest.mark.parametrize("krel,flavour", [
    ("6.1.0-56-amd64", "amd64"), ("6.12.95+deb12-amd64", "amd64"), ("6.1.0-56-cloud-amd64", "cloud-amd64"),
    ("6.12.12+bpo-rt-amd64", "rt-amd64"), ("6.12.48+deb13-amd64", "amd64")])
def test_flavour_of_a_kernel_release(krel, flavour):
    assert build_kmod_deb.flavour(krel) == flavour


def test_flavour_refuses_a_release_without_one():
    with pytest.raises(SystemExit, match="no flavour"):
        build_kmod_deb.flavour("6.1.0")


def test_metapackage_follows_the_stable_kernel_not_backports():
    stable, bpo = headers("linux-headers-6.1.*-amd64"), headers("linux-headers-6.12.*+deb12-amd64")
    if not (stable and bpo):
        pytest.skip("needs linux-headers 6.1 (bookworm) and 6.12 (bookworm-backports) installed")
    kernels = [p.name[len("linux-headers-"):] for p in (bpo, stable)]
    assert build_all.meta_kernels(kernels) == [kernels[1]]
    assert build_all.meta_kernels(kernels, [kernels[0]]) == [kernels[0]]
    assert build_all.meta_kernels([kernels[0]]) == [kernels[0]]  # only backports built: it is the newest
    with pytest.raises(SystemExit, match="--meta-kernel"):
        build_all.meta_kernels([kernels[1]], [kernels[0]])


def test_the_role_reads_flavours_as_the_packaging_does():
    """roles/kmod/vars/main.yml names the flavour metapackage with the same pattern as build_kmod_deb.py."""
    import yaml
    role_vars = yaml.safe_load((REPO / "roles/kmod/vars/main.yml").read_text())
    assert role_vars["__vhostblk_kmod_flavour_re"] == build_kmod_deb.FLAVOUR_RE.pattern
    assert role_vars["__vhostblk_kmod_prebuilt_cert"] == "/" + modkey.CERT_PATH


def test_dkms_signs_our_module_with_the_key_from_the_environment(built, tmp_path):
    """The kmod role's DKMS signing (vhostblk_kmod_mok_signing): dkms 3.0 takes mok_signing_key /
    mok_certificate from the environment of its command, so no global framework.conf.d file is
    needed. dkms itself on private trees builds the module against the real headers and signs it
    with a throwaway key given that way."""
    import build_dkms_deb
    import pkgcommon
    assert shutil.which("dkms"), "dkms not installed (./dev setup)"
    key = modkey.ModuleKey(tmp_path / "mok")
    key.ensure()
    src = tmp_path / "src" / f"vhost-blk-{VERSION}"
    pkgcommon.copy_module_source(src)
    (src / "dkms.conf").write_text(build_dkms_deb.dkms_conf(VERSION))
    trees = ["--sourcetree", tmp_path / "src", "--dkmstree", tmp_path / "dkms-tree"]
    (tmp_path / "dkms-tree").mkdir()
    env = dict(os.environ, mok_signing_key=str(key.key), mok_certificate=str(key.cert))
    ok(["dkms", "add", "-m", "vhost-blk", "-v", VERSION, *trees], env=env)
    out = ok(["dkms", "build", "-m", "vhost-blk", "-v", VERSION, "-k", built["krel"], *trees,
              "--kernelsourcedir", built["headers"]], env=env)
    assert f"Signing key: {key.key}" in out, out
    kos = sorted((tmp_path / "dkms-tree").glob(f"vhost-blk/{VERSION}/{built['krel']}/*/module/vhost_blk.ko*"))
    assert len(kos) == 1, kos
    ko = kos[0]
    if ko.suffix == ".xz":
        ok(["xz", "-dk", ko])
        ko = ko.with_suffix("")
    assert ok(["modinfo", "-F", "sig_key", ko]).strip() == key.key_id()
    content, pkcs7 = split_signature(ko.read_bytes())
    res = cms_verify(tmp_path, content, pkcs7, key.cert)
    assert res.returncode == 0 and "Verification successful" in res.stderr, res.stderr
