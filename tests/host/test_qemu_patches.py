# SPDX-License-Identifier: GPL-2.0-or-later
"""Checks of the QEMU patch series in qemu-patches/<version>/.

- every series file lists existing git-format-patch files, and every patch is listed;
- every patch carries DEP-3 fields (Description, Origin: vendor, Author, Forwarded: no, Last-Update):
  a new device is ours and could go upstream, so neither 'not-needed' nor an upstream origin;
- the vendored linux-headers/linux/vhost_blk.h is byte-for-byte the uapi header of kmod-src;
- the series applies without fuzz, in order, to Debian's source tree with Debian's quilt series
  applied (fixture debian_qemu_source: fetched once into the cache, or $VHOSTBLK_QEMU_SRC_72 /
  $VHOSTBLK_QEMU_SRC_100);
- the patched binary (fixture patched_qemu: packaging/build_qemu_minimal.py, or
  $VHOSTBLK_QEMU_BIN) lists the device's properties and refuses bad configurations.
"""

import datetime
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PATCH_ROOT = REPO / "qemu-patches"
UAPI = REPO / "kmod-src" / "include" / "uapi" / "linux" / "vhost_blk.h"
VENDORED = "linux-headers/linux/vhost_blk.h"
VERSIONS = ("7.2", "10.0")
DEP3_REQUIRED = ("Description", "Origin", "Author", "Forwarded", "Last-Update")


def read_series(version):
    lines = (PATCH_ROOT / version / "series").read_text().splitlines()
    return [ln.split()[0] for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def patch_header(text):
    """The part of a git-format-patch file before the '---' separating message and diff."""
    head, sep, _diff = text.partition("\n---\n")
    assert sep, "no '---' line between the message and the diff"
    return head


def dep3_fields(text):
    fields = {}
    for line in patch_header(text).splitlines():
        m = re.match(r"^([A-Z][A-Za-z-]+): (.*)$", line)
        if m:
            fields.setdefault(m.group(1), m.group(2).strip())
    return fields


def file_sections(text):
    """Yield (path, section text) for every 'diff --git a/X b/X' section of a patch."""
    parts = re.split(r"^(?=diff --git )", text, flags=re.M)
    for part in parts[1:]:
        m = re.match(r"diff --git a/(\S+) b/(\S+)", part)
        yield m.group(2), part


def new_file_content(section):
    """Content of a file created by a diff section (one '@@ -0,0 +1,N @@' hunk of N added lines)."""
    assert "\nnew file mode " in section, "section does not create a file"
    m = re.search(r"^@@ -0,0 \+1(?:,(\d+))? @@.*\n", section, re.M)
    assert m, "no new-file hunk header"
    count = int(m.group(1) or 1)
    lines = section[m.end():].split("\n")
    added = lines[:count]
    assert all(ln.startswith("+") for ln in added), "hunk shorter than its header says"
    data = "".join(ln[1:] + "\n" for ln in added)
    if count < len(lines) and lines[count].startswith("\\ No newline at end of file"):
        data = data[:-1]
    return data.encode()


@pytest.fixture(params=sorted(VERSIONS))
def version(request):
    if not (PATCH_ROOT / request.param).is_dir():
        pytest.fail(f"qemu-patches/{request.param} is missing")
    return request.param


def test_series_lists_exactly_the_patches(version):
    series = read_series(version)
    assert series, "empty series"
    assert len(series) == len(set(series)), "duplicate entries in series"
    on_disk = sorted(p.name for p in (PATCH_ROOT / version).glob("*.patch"))
    assert sorted(series) == on_disk
    for i, name in enumerate(series, 1):
        assert re.match(rf"^{i:04d}-[A-Za-z0-9][A-Za-z0-9._-]*\.patch$", name), f"bad name or order: {name}"


def test_patches_are_git_format_patch_with_dep3(version):
    for name in read_series(version):
        text = (PATCH_ROOT / version / name).read_text()
        assert text.startswith("From "), f"{name}: not git format-patch output"
        assert re.search(r"^Subject: \[PATCH[^\]]*\] \S", text, re.M), f"{name}: no Subject"
        assert "\ndiff --git a/" in text, f"{name}: no diff"
        fields = dep3_fields(text)
        for key in DEP3_REQUIRED:
            assert fields.get(key), f"{name}: DEP-3 field {key} missing"
        assert fields["Forwarded"] == "no", f"{name}: Forwarded must be no (not sent upstream yet)"
        assert fields["Origin"] == "vendor", f"{name}: Origin must be vendor (written by us)"
        datetime.date.fromisoformat(fields["Last-Update"])
        assert "<" in fields["Author"] and "@" in fields["Author"], f"{name}: Author needs a mail address"


def test_vendored_uapi_header_is_identical(version):
    original = UAPI.read_bytes()
    copies = 0
    for name in read_series(version):
        text = (PATCH_ROOT / version / name).read_text()
        for path, section in file_sections(text):
            if path != VENDORED:
                continue
            assert "\nnew file mode " in section, f"{name}: modifies the vendored header instead of adding it"
            assert new_file_content(section) == original, f"{name}: {VENDORED} differs from {UAPI}"
            assert "kmod-src/include/uapi/linux/vhost_blk.h" in dep3_fields(text)["Description"] + patch_header(
                text
            ), f"{name}: DEP-3 header does not say where the copy comes from"
            copies += 1
    assert copies == 1, f"{VENDORED} must be added exactly once per series, found {copies}"


def test_new_file_parser_rejects_a_changed_copy():
    """The comparison above must notice a one-byte difference."""
    text = (PATCH_ROOT / "7.2" / read_series("7.2")[0]).read_text()
    sections = dict(file_sections(text))
    section = sections.get(VENDORED)
    if section is None:
        pytest.skip("first 7.2 patch does not carry the header")
    tampered = section.replace("+#define VHOST_BLK_ABI_VERSION\t\t1", "+#define VHOST_BLK_ABI_VERSION\t\t2")
    assert tampered != section
    assert new_file_content(tampered) != UAPI.read_bytes()


def touched_paths(text):
    return [path for path, _body in file_sections(text)]


@pytest.mark.parametrize("ver", sorted(VERSIONS))
def test_series_applies_to_debian_source(ver, tmp_path, debian_qemu_source):
    src = debian_qemu_source(ver)
    assert (src / "debian" / "patches" / "series").is_file(), f"{src} is not a Debian qemu source tree"
    assert shutil.which("patch"), "patch(1) not installed (./dev setup installs it)"
    # Copy only the files the series touches, then apply the series for real, in order.
    names = read_series(ver)
    for name in names:
        for rel in touched_paths((PATCH_ROOT / ver / name).read_text()):
            if (src / rel).exists():
                dst = tmp_path / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst)
    for name in names:
        res = subprocess.run(
            ["patch", "-p1", "--forward", "--batch", "--fuzz=0", "-i", str(PATCH_ROOT / ver / name)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, f"{name} does not apply to {src}:\n{res.stdout}{res.stderr}"
        assert "fuzz" not in res.stdout, f"{name} applies only with fuzz:\n{res.stdout}"


def _build_qemu():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_qemu", REPO / "packaging" / "build_qemu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_x86_only_profile_marks_only_foreign_packages():
    bq = _build_qemu()
    control = "Source: qemu\nBuild-Depends: x\n\nPackage: qemu-system-x86\nArchitecture: any\n\n" \
        "Package: qemu-system-arm\nArchitecture: any\n\nPackage: qemu-user\nArchitecture: any\n"
    out = bq.control_with_profile(control, bq.X86_KEEP, bq.PROFILE_X86)
    stanzas = {s.split("\n")[0]: s for s in out.split("\n\n")}
    assert "Build-Profiles" not in stanzas["Package: qemu-system-x86"]
    assert "Build-Profiles" not in stanzas["Source: qemu"]
    for pkg in ("qemu-system-arm", "qemu-user"):
        assert f"Package: {pkg}\nBuild-Profiles: <!pkg.vhostblk.x86only>\n" in stanzas[f"Package: {pkg}"]


def test_x86_only_rules_edit_fits_debian_7_2_rules(debian_qemu_source):
    src = debian_qemu_source("7.2")
    assert shutil.which("make") and shutil.which("dh_listpackages"), "make/debhelper not installed (./dev setup)"
    bq = _build_qemu()
    rules = bq.rules_x86_only_7_2((src / "debian" / "rules").read_text())
    with pytest.raises(SystemExit):
        bq.rules_x86_only_7_2("no markers here\n")
    # evaluate the edited rules with the profile: only x86 targets, no xen build
    env = dict(os.environ, DEB_BUILD_PROFILES=bq.PROFILE_X86)
    res = subprocess.run(
        ["make", "-s", "-f", "-", "-pn"], input=rules, cwd=src, env=env, capture_output=True, text=True, check=False
    )
    db = dict(
        ln.split(" = ", 1) if " = " in ln else ln.split(" := ", 1)
        for ln in res.stdout.splitlines()
        if re.match(r"^(system_targets|systems|qemu-builds) :?= ", ln)
    )
    assert db.get("system_targets") == "i386 x86_64", res.stderr[-2000:]
    assert db.get("systems") == "x86"
    assert "xen" not in db.get("qemu-builds", "xen").split()


def _realize(binary, device, tmp_path, pass_fds=(), extra=()):
    cmd = [binary, "-machine", "q35", "-accel", "tcg", "-nodefaults", "-display", "none", "-S", *extra,
           "-device", device]
    for firmware_dir in ("/usr/share/seabios", "/usr/share/qemu"):  # for a binary run from its build tree
        if os.path.isdir(firmware_dir):
            cmd += ["-L", firmware_dir]
    # realize errors end QEMU at once; -S keeps a working configuration from running a guest
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, pass_fds=pass_fds,
                          cwd=tmp_path)


def test_device_properties_listed(patched_qemu):
    res = subprocess.run([patched_qemu, "-device", "vhost-blk-pci,help"], capture_output=True, text=True, timeout=60,
                         check=False)
    for prop in ("path=", "drive=", "num-queues=", "queue-size=", "bootindex=", "read-only=", "serial=",
                 "cache-direct=", "vhostfd=", "logical-block-size=", "discard=", "write-zeroes="):
        assert prop in res.stdout, f"{prop} missing from:\n{res.stdout}"


def test_device_refuses_bad_configurations(tmp_path, patched_qemu):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * (1 << 20))
    qcow2 = tmp_path / "disk.qcow2"
    qcow2.write_bytes(b"QFI\xfb\0\0\0\3" + b"\0" * 4088)
    cases = {
        "vhost-blk-pci": "property 'path'",
        f"vhost-blk-pci,path={tmp_path}/missing.raw": "Could not open",
        f"vhost-blk-pci,drive={tmp_path}/missing.raw": "Could not open",  # the old name of path
        f"vhost-blk-pci,drive={raw},path={qcow2}": "'drive' is an old name of 'path'; give only one of them",
        "vhost-blk-pci,path=/dev/fdset/7": "Could not dup FD for /dev/fdset/7",  # no such fdset (no add-fd)
        "vhost-blk-pci,path=/dev/null": "neither a regular file nor a block device",
        f"vhost-blk-pci,path={raw},serial=abc": "'serial' cannot be passed",
        f"vhost-blk-pci,path={raw},logical-block-size=100": "logical-block-size must be",
    }
    if not os.path.exists("/dev/vhost-blk"):
        cases[f"vhost-blk-pci,drive={raw}"] = (
            "vhost-blk: cannot open /dev/vhost-blk: No such file or directory (is the vhost_blk module loaded?)"
        )
    for device, message in cases.items():
        res = _realize(patched_qemu, device, tmp_path)
        assert res.returncode != 0 and message in res.stderr, f"{device}: rc={res.returncode}\n{res.stderr}"


def test_device_warns_about_image_magic_and_goes_on(tmp_path, patched_qemu):
    """A raw disk whose guest wrote a qcow2 header is served (warning), not refused at every start."""
    qcow2 = tmp_path / "disk.qcow2"
    qcow2.write_bytes(b"QFI\xfb\0\0\0\3" + b"\0" * 4088)
    with open(qcow2, "r+b") as f:  # passed as an fd, as a management layer would (add-fd)
        fd = f.fileno()
        res = _realize(patched_qemu, "vhost-blk-pci,path=/dev/fdset/3", tmp_path, pass_fds=(fd,),
                       extra=["-add-fd", f"fd={fd},set=3"])
    assert "'/dev/fdset/3' starts with the magic of a qcow/qcow2 image; it is served raw" in res.stderr, res.stderr
    # past the backing checks: what stops it now is the module (or, with the module, nothing)
    if not os.path.exists("/dev/vhost-blk"):
        assert "cannot open /dev/vhost-blk" in res.stderr, res.stderr


def test_device_rejects_a_vhostfd_that_is_not_vhost_blk(tmp_path, patched_qemu):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * (1 << 20))
    with open("/dev/null", "rb") as null:
        fd = null.fileno()
        res = _realize(patched_qemu, f"vhost-blk-pci,drive={raw},vhostfd={fd}", tmp_path, pass_fds=(fd,))
    assert res.returncode != 0
    assert "VHOST_BLK_GET_INFO failed" in res.stderr, res.stderr
