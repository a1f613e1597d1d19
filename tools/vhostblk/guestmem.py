# SPDX-License-Identifier: GPL-2.0-or-later
"""Guest RAM: one shared memfd mapping, guest physical address 0 = first byte."""

import ctypes
import mmap
import os
import weakref

# Live guest memories by user-space address, so that a vhost-user front end can find the memfd
# behind an address of the memory table (kernel vhost takes addresses, vhost-user takes fds).
_LIVE = weakref.WeakValueDictionary()


class OutOfGuestMemory(MemoryError):
    pass


class GuestMemory:
    """Shared mapping of a memfd (``fd``) with a bump allocator.

    GPAs are offsets into the mapping; the vhost memory table maps GPA 0 to
    the mapping's user-space address (``hva``). The first page is never
    handed out, so a device that wrongly uses GPA 0 cannot hit a ring.
    """

    def __init__(self, size, gpa_base=0):
        self.size = size
        self.gpa_base = gpa_base
        self.fd = os.memfd_create("vhostblk-guest-ram", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.mm = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._anchor = ctypes.c_char.from_buffer(self.mm)
        self.hva = ctypes.addressof(self._anchor)
        _LIVE[self.hva] = self
        self.view = memoryview(self.mm)
        # the ring indices, 16 bits each, stored and loaded in one access through this view (a device
        # polling avail->idx must never see half of a new value: struct.pack_into writes byte by byte)
        self.u16 = self.view.cast("H")
        self._next = 4096

    def close(self):
        if self.mm is None:
            return
        _LIVE.pop(self.hva, None)
        self.u16.release()
        self.view.release()
        del self._anchor
        self.mm.close()
        self.mm = None
        os.close(self.fd)
        self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # allocation -----------------------------------------------------------
    def alloc(self, size, align=16):
        """Reserve size bytes; returns the GPA."""
        off = (self._next + align - 1) & ~(align - 1)
        if off + size > self.size:
            raise OutOfGuestMemory(f"need {size} bytes at {off:#x}, RAM is {self.size:#x}")
        self._next = off + size
        return self.gpa_base + off

    def mark(self):
        return self._next

    def release_to(self, mark):
        self._next = mark

    # address conversion ---------------------------------------------------
    def off(self, gpa):
        o = gpa - self.gpa_base
        if not 0 <= o < self.size:
            raise ValueError(f"GPA {gpa:#x} outside guest RAM")
        return o

    def gpa_to_hva(self, gpa):
        return self.hva + self.off(gpa)

    def hva_to_gpa(self, hva):
        o = hva - self.hva
        if not 0 <= o < self.size:
            raise ValueError(f"HVA {hva:#x} outside guest RAM")
        return self.gpa_base + o

    def regions(self):
        """(guest_phys_addr, memory_size, userspace_addr) for VHOST_SET_MEM_TABLE."""
        return [(self.gpa_base, self.size, self.hva)]

    # data access ----------------------------------------------------------
    def write(self, gpa, data):
        o = self.off(gpa)
        self.mm[o:o + len(data)] = data

    def read(self, gpa, length):
        o = self.off(gpa)
        return bytes(self.mm[o:o + length])

    def fill(self, gpa, length, byte=0):
        o = self.off(gpa)
        self.mm[o:o + length] = bytes([byte]) * length


def backing_of(hva):
    """(memfd, offset in it) behind a user-space address of a live GuestMemory."""
    for mem in list(_LIVE.values()):
        if mem.hva <= hva < mem.hva + mem.size:
            return mem.fd, hva - mem.hva
    raise ValueError(f"address {hva:#x} is not in any guest memory of this process")
