# SPDX-License-Identifier: GPL-2.0-or-later
"""What the kernel-only self-test checks need from the machine, and the scratch storage they block on.

- ``unmet()``: why a check cannot run here (the fake device, not root, no debugfs, a missing
  tool), or None. Each check says it once instead of repeating the gates;
- ``frozen_ext4()``: a small ext4 on a loop device whose writers ``freeze()`` holds in the kernel;
- ``suspended_dm()``: a device-mapper linear device over a loop device whose readers
  ``suspend()`` holds in the kernel.

Both context managers raise ``Unavailable`` when the machine cannot make the device (the check
reports that as a skip with the reason) and always leave nothing behind: thawed or resumed,
unmounted, detached, the work directory removed.
"""

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile

from .devstats import DEBUGFS, debugfs_mounted

FIFREEZE = 0xC0045877            # _IOWR('X', 119, int)
FITHAW = 0xC0045878              # _IOWR('X', 120, int)
EXT4_TOOLS = ("mkfs.ext4", "losetup", "mount", "umount")
DM_TOOLS = ("dmsetup", "losetup")


class Unavailable(Exception):
    """The machine cannot give a check what it needs; the message says what."""


def unmet(lc, fake, root=None, debugfs=False, tools=()):
    """Why a kernel-only check cannot run here, or None.

    ``fake``: what the in-process fake device lacks for it; ``root``: what needs root, if
    anything; ``debugfs``: it reads the module's debugfs files; ``tools``: programs it runs."""
    probe = lc.open_device()
    in_kernel = getattr(type(probe), "IN_KERNEL", False)
    probe.close()
    if not in_kernel:
        return fake
    if root and os.geteuid() != 0:
        return f"{root} needs root (uid {os.getuid()})"
    if debugfs and (not debugfs_mounted() or not os.access(DEBUGFS, os.R_OK | os.X_OK)):
        return f"debugfs not mounted or not readable on {DEBUGFS}"
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        return f"needs {' '.join(missing)}"
    return None


def _run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _quiet(*argv):
    subprocess.run(argv, check=False, capture_output=True)


def _failed(what, e):
    err = (getattr(e, "stderr", "") or "").strip()[:200]
    return Unavailable(f"cannot make {what}: {e}{': ' + err if err else ''}")


class FrozenExt4:
    """A 64 MiB ext4 on a loop device over a file in ``workdir``; freeze() blocks its writers."""

    def __init__(self, workdir):
        self.img = os.path.join(workdir, "fs.img")
        self.mnt = os.path.join(workdir, "mnt")
        self.loop = None
        self.mounted = False
        self.frozen_fd = None

    def setup(self):
        with open(self.img, "wb") as f:
            f.truncate(64 << 20)
        _quiet("modprobe", "-q", "loop")
        self.loop = _run("losetup", "-f", "--show", self.img).strip()
        _run("mkfs.ext4", "-q", "-F", self.loop)
        os.mkdir(self.mnt)
        _run("mount", "-t", "ext4", self.loop, self.mnt)
        self.mounted = True

    def freeze(self):
        self.frozen_fd = os.open(self.mnt, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.ioctl(self.frozen_fd, FIFREEZE, 0)

    def thaw(self):
        if self.frozen_fd is not None:
            try:
                fcntl.ioctl(self.frozen_fd, FITHAW, 0)
            finally:
                os.close(self.frozen_fd)
                self.frozen_fd = None

    release = thaw     # let the held writers go

    def cleanup(self):
        self.thaw()
        if self.mounted:
            _quiet("umount", self.mnt)
        if self.loop:
            _quiet("losetup", "-d", self.loop)


class SuspendedDm:
    """A dm linear device of ``size`` bytes over a loop device over a file in ``workdir``;
    suspend() holds every read of it."""

    def __init__(self, workdir, size):
        self.img = os.path.join(workdir, "dm.img")
        self.size = size
        self.name = f"vhostblk-selftest-{os.getpid()}"
        self.node = None
        self.loop = None
        self.created = False
        self.suspended = False

    def setup(self):
        """Make the device (``.node``) and let udev finish with it."""
        with open(self.img, "wb") as f:
            f.truncate(self.size)
        for mod in ("loop", "dm_mod"):
            _quiet("modprobe", "-q", mod)
        self.loop = _run("losetup", "-f", "--show", self.img).strip()
        _run("dmsetup", "create", self.name, "--noudevsync", "--table", f"0 {self.size // 512} linear {self.loop} 0")
        self.created = True
        self.node = "/dev/" + _run("dmsetup", "info", "-c", "--noheadings", "-o", "blkdevname", self.name).strip()
        self.settle()

    @staticmethod
    def settle():
        """Let udev finish probing the device (blkid reads its first and last blocks into the cache)."""
        if shutil.which("udevadm"):
            _quiet("udevadm", "settle", "--timeout=30")

    def suspend(self):
        _run("dmsetup", "suspend", "--noudevsync", self.name)
        self.suspended = True

    def resume(self):
        if self.suspended:
            _run("dmsetup", "resume", "--noudevsync", self.name)
            self.suspended = False

    release = resume   # let the held readers go

    def cleanup(self):
        self.resume()
        if self.created:
            _quiet("dmsetup", "remove", "--noudevsync", self.name)
        if self.loop:
            _quiet("losetup", "-d", self.loop)


def release_then_close(dev, sessions=(), fds=()):
    """A check's clean-up in the one order that cannot hang: ``dev.release()`` lets the requests
    it holds go, then the ``sessions`` close (a close waits for the requests in flight) and the
    backing ``fds`` (None entries: never opened)."""
    dev.release()
    for s in sessions:
        if s is not None:
            s.close()
    for fd in fds:
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def _scratch(make, what, tools, prefix):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise Unavailable(f"needs {' '.join(missing)}")
    work = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    dev = make(work)
    try:
        try:
            dev.setup()
        except (subprocess.CalledProcessError, OSError) as e:
            raise _failed(what, e) from e
        yield dev
    finally:
        dev.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def frozen_ext4(prefix):
    """A mounted FrozenExt4 (``.mnt``), not frozen yet; thawed and removed on exit."""
    return _scratch(FrozenExt4, "an ext4 filesystem on a loop device", EXT4_TOOLS, prefix)


def suspended_dm(prefix, size):
    """A SuspendedDm (``.node``), not suspended yet; resumed and removed on exit."""
    return _scratch(lambda work: SuspendedDm(work, size), "a dm linear device over a loop device", DM_TOOLS, prefix)
