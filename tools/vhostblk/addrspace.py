# SPDX-License-Identifier: GPL-2.0-or-later
"""The extent of this process's user address space (where the kernel's access_ok() ends)."""

import ctypes
import functools

PAGE = 4096


@functools.cache
def user_top():
    """The end of the user address space: access_ok() fails for bitmap bytes at or above it.
    x86_64 has 47 bits with 4-level paging and 56 with 5-level (a CPU with LA57, as QEMU's
    ``-cpu max`` gives L1): an mmap hint above 47 bits is honoured only with 5 levels."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    addr = libc.mmap(1 << 52, PAGE, 0, 0x22, -1, 0)     # PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS
    five_level = addr not in (None, ctypes.c_void_p(-1).value) and addr >= 1 << 47
    if addr not in (None, ctypes.c_void_p(-1).value):
        libc.munmap(addr, PAGE)
    return (1 << (56 if five_level else 47)) - PAGE
