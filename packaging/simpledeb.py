# SPDX-License-Identifier: GPL-2.0-or-later
"""Small binary packages built with dpkg-deb alone: the flavour metapackage, the certificate package.

build(out, control, files, epoch, changes) stages `files` ({path in the package: bytes}) with the
doc directory Debian policy asks for (copyright, changelog.gz), md5sums and Installed-Size, and
returns the .deb. `control` is an ordered mapping of control fields; Package, Version and
Architecture name the file.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pkgcommon as pc


def build(out, control, files, epoch, changes):
    name, version, arch = control["Package"], control["Version"], control["Architecture"]
    work = Path(tempfile.mkdtemp(prefix="pkg-simpledeb-"))
    try:
        root = work / "root"
        for path, data in files.items():
            dest = root / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        doc = root / "usr" / "share" / "doc" / name
        doc.mkdir(parents=True)
        shutil.copy2(pc.FILES / "dkms" / "copyright", doc / "copyright")
        plain = doc / "changelog"
        plain.write_text(f"{name} ({version}) unstable; urgency=medium\n\n  * {changes}\n\n"
                         f" -- {pc.maintainer()}  {pc.rfc2822(epoch)}\n")
        pc.gzip_file(plain, doc / "changelog.gz")
        plain.unlink()
        for f in root.rglob("*"):
            os.chmod(f, 0o755 if f.is_dir() else 0o644)
            os.utime(f, (epoch, epoch), follow_symlinks=False)
        paths = sorted(p for p in root.rglob("*") if p.is_file())
        fields = dict(control)
        fields["Maintainer"] = pc.maintainer()
        fields["Installed-Size"] = str(sum((p.stat().st_size + 1023) // 1024 for p in paths) + len(paths))
        ctl = root / "DEBIAN"
        ctl.mkdir()
        (ctl / "control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
        (ctl / "md5sums").write_text("".join(f"{pc.file_hashes(p)['md5']}  {p.relative_to(root)}\n" for p in paths))
        for f in ctl.iterdir():
            os.utime(f, (epoch, epoch))
        out.mkdir(parents=True, exist_ok=True)
        deb = out / f"{name}_{version}_{arch}.deb"
        pc.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb],
               env=dict(os.environ, SOURCE_DATE_EPOCH=str(epoch)), capture_output=True, text=True)
        return deb
    finally:
        shutil.rmtree(work, ignore_errors=True)
