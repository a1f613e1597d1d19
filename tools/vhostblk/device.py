# SPDX-License-Identifier: GPL-2.0-or-later
"""Thin wrapper over the /dev/vhost-blk ioctls."""

import fcntl
import os
import struct

from . import abi as abimod

DEFAULT_PATH = "/dev/vhost-blk"


class VhostBlkDevice:
    """One open /dev/vhost-blk file descriptor.

    Methods are named after the ioctls. ``OSError`` from the kernel
    propagates unchanged (errno tells what went wrong).
    """

    IN_KERNEL = True     # I/O is done by the module (the fake device does it in this process)

    def __init__(self, path=None, abi=None):
        self.abi = abi or abimod.load()
        self.path = path or "/dev/" + self.abi.strings.get("VHOST_BLK_DEVICE_NAME", "vhost-blk")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)

    def close(self):
        if self.fd is not None and self.fd >= 0:
            os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _ioctl(self, name, arg=0, mutate=False):
        req = self.abi.ioctls[name]
        if mutate:
            buf = bytearray(arg)
            fcntl.ioctl(self.fd, req, buf, True)
            return bytes(buf)
        return fcntl.ioctl(self.fd, req, arg)

    # standard vhost ------------------------------------------------------
    def set_owner(self):
        self._ioctl("VHOST_SET_OWNER")

    def reset_owner(self):
        self._ioctl("VHOST_RESET_OWNER")

    def get_features(self):
        return struct.unpack("<Q", self._ioctl("VHOST_GET_FEATURES", bytes(8), True))[0]

    def set_features(self, features):
        self._ioctl("VHOST_SET_FEATURES", struct.pack("<Q", features))

    def set_mem_table(self, regions):
        buf = struct.pack(abimod.STD_STRUCTS["vhost_memory"], len(regions), 0)
        for gpa, size, uaddr in regions:
            buf += struct.pack(abimod.STD_STRUCTS["vhost_memory_region"], gpa, size, uaddr, 0)
        self._ioctl("VHOST_SET_MEM_TABLE", buf)

    def set_log_base(self, addr):
        self._ioctl("VHOST_SET_LOG_BASE", struct.pack("<Q", addr))

    def set_vring_num(self, index, num):
        self._ioctl("VHOST_SET_VRING_NUM", struct.pack("<II", index, num))

    def set_vring_base(self, index, base):
        self._ioctl("VHOST_SET_VRING_BASE", struct.pack("<II", index, base))

    def get_vring_base(self, index):
        out = self._ioctl("VHOST_GET_VRING_BASE", struct.pack("<II", index, 0), True)
        return struct.unpack("<II", out)[1]

    def set_vring_addr(self, index, desc, used, avail, flags=0, log=0):
        self._ioctl("VHOST_SET_VRING_ADDR",
                    struct.pack(abimod.STD_STRUCTS["vhost_vring_addr"],
                                index, flags, desc, used, avail, log))

    def _vring_file(self, name, index, fd):
        self._ioctl(name, struct.pack("<Ii", index, fd))

    def set_vring_kick(self, index, fd):
        self._vring_file("VHOST_SET_VRING_KICK", index, fd)

    def set_vring_call(self, index, fd):
        self._vring_file("VHOST_SET_VRING_CALL", index, fd)

    def set_vring_err(self, index, fd):
        self._vring_file("VHOST_SET_VRING_ERR", index, fd)

    def set_vring_busyloop_timeout(self, index, usecs):
        self._ioctl("VHOST_SET_VRING_BUSYLOOP_TIMEOUT", struct.pack("<II", index, usecs))

    def get_vring_busyloop_timeout(self, index):
        out = self._ioctl("VHOST_GET_VRING_BUSYLOOP_TIMEOUT", struct.pack("<II", index, 0), True)
        return struct.unpack("<II", out)[1]

    # vhost-blk -----------------------------------------------------------
    def set_backend(self, fd, flags=0):
        s = self.abi.struct("vhost_blk_backend")
        self._ioctl("VHOST_BLK_SET_BACKEND", s.pack(fd=fd, flags=flags))

    def get_info(self):
        s = self.abi.struct("vhost_blk_info")
        return s.unpack(self._ioctl("VHOST_BLK_GET_INFO", bytes(s.size), True))

    def set_serial(self, serial, length=None, reserved=0, pad=None):
        """VHOST_BLK_SET_SERIAL with ``serial`` (bytes, at most 20); b"" clears it.

        ``length``, ``reserved`` and ``pad`` override the fields (to test the validation)."""
        s = self.abi.struct("vhost_blk_serial")
        size = self.abi.VHOST_BLK_SERIAL_BYTES
        self._ioctl("VHOST_BLK_SET_SERIAL",
                    s.pack(len=len(serial) if length is None else length, reserved=reserved,
                           serial=list(bytes(serial[:size]).ljust(size, b"\0")),
                           pad=list(pad or bytes(4))))

    def set_log_fd(self, fd):
        self._ioctl("VHOST_SET_LOG_FD", struct.pack("<i", fd))

    # module parameters (/sys/module/vhost_blk/parameters) -----------------
    @staticmethod
    def module_param(name, value=None):
        """Read a parameter of the loaded module, or write it when ``value`` is given.

        Returns the value (as text) it had before."""
        path = f"/sys/module/vhost_blk/parameters/{name}"
        with open(path) as f:
            old = f.read().strip()
        if value is not None:
            with open(path, "w") as f:
                f.write(str(value))
        return old
