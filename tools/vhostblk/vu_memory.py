# SPDX-License-Identifier: GPL-2.0-or-later
"""Guest memory as the vhost-user back end sees it: the front end's regions mapped here.

QEMU sends each RAM region as a file descriptor with an mmap offset, its guest physical address
and its own user-space address. The back end maps them into its address space; the kernel
device is then given *our* addresses (VHOST_SET_MEM_TABLE), and the vring addresses QEMU sends
(in QEMU's address space) are translated the same way.
"""

import ctypes
import mmap
import os
import stat

from .vu_proto import MAX_REGIONS, MEM_HEADER, MEM_REGION, ProtocolError, unpack_exact

PAGE = mmap.PAGESIZE


class Mapping:
    """One shared mapping of an fd; ``addr`` is where byte 0 of the mapping is."""

    def __init__(self, fd, length, what):
        try:
            self.mm = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError) as e:
            raise ProtocolError(f"{what}: cannot map {length} bytes of its fd: {e}") from e
        self._anchor = ctypes.c_char.from_buffer(self.mm)
        self.addr = ctypes.addressof(self._anchor)

    def close(self):
        if self.mm is not None:
            del self._anchor
            self.mm.close()
            self.mm = None


def _fd_size(fd):
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return None      # hugetlbfs and memfd are regular files; anything else: let mmap decide
    return st.st_size


def map_fd(fd, size, offset, what):
    """Map ``size`` bytes at ``offset`` of fd; returns (Mapping, address of byte ``offset``)."""
    if size == 0:
        raise ProtocolError(f"{what}: empty region")
    length = offset + size
    have = _fd_size(fd)
    if have is not None and have < length:
        raise ProtocolError(f"{what}: needs bytes up to {length:#x} of its fd, which has only {have:#x}")
    m = Mapping(fd, length, what)
    return m, m.addr + offset


class Region:
    __slots__ = ("gpa", "size", "qemu_addr", "mapping", "addr")

    def __init__(self, gpa, size, qemu_addr, mapping, addr):
        self.gpa, self.size, self.qemu_addr = gpa, size, qemu_addr
        self.mapping, self.addr = mapping, addr


class MemoryTable:
    """The regions of one SET_MEM_TABLE, mapped."""

    def __init__(self, payload, fds):
        nregions, _pad = unpack_exact(MEM_HEADER, payload, "SET_MEM_TABLE")
        if not 1 <= nregions <= MAX_REGIONS:
            raise ProtocolError(f"SET_MEM_TABLE: {nregions} regions (1 to {MAX_REGIONS})")
        if len(payload) < MEM_HEADER.size + nregions * MEM_REGION.size:
            raise ProtocolError(f"SET_MEM_TABLE: {nregions} regions do not fit {len(payload)} bytes")
        if len(fds) != nregions:
            raise ProtocolError(f"SET_MEM_TABLE: {nregions} regions but {len(fds)} file descriptors")
        self.regions = []
        try:
            for i in range(nregions):
                gpa, size, qemu_addr, offset = MEM_REGION.unpack_from(payload, MEM_HEADER.size + i * MEM_REGION.size)
                for end in (gpa, qemu_addr):
                    if end + size > 1 << 64:
                        raise ProtocolError(f"SET_MEM_TABLE region {i}: wraps around")
                mapping, addr = map_fd(fds[i], size, offset, f"SET_MEM_TABLE region {i}")
                self.regions.append(Region(gpa, size, qemu_addr, mapping, addr))
        except BaseException:
            self.close()
            raise

    def kernel_regions(self):
        """(gpa, size, our address) for VHOST_SET_MEM_TABLE."""
        return [(r.gpa, r.size, r.addr) for r in self.regions]

    def translate(self, qemu_addr, what):
        """A front-end user-space address -> the same byte in our mapping."""
        for r in self.regions:
            if r.qemu_addr <= qemu_addr < r.qemu_addr + r.size:
                return r.addr + (qemu_addr - r.qemu_addr)
        raise ProtocolError(f"{what}: address {qemu_addr:#x} is in no region of the memory table")

    def close(self):
        for r in self.regions:
            r.mapping.close()
        self.regions = []
