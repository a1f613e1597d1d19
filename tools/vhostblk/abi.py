# SPDX-License-Identifier: GPL-2.0-or-later
"""ABI numbers for /dev/vhost-blk.

Our own ioctls, structures and flags are parsed from the uapi header
(include/uapi/linux/vhost_blk.h), the single source of truth. The standard
vhost ioctls of <linux/vhost.h> are fixed kernel ABI and computed here with
the usual _IOC helpers.
"""

import glob
import os
import re
import struct
from pathlib import Path

# ---- asm-generic/ioctl.h -------------------------------------------------
IOC_NRBITS, IOC_TYPEBITS, IOC_SIZEBITS = 8, 8, 14
IOC_NRSHIFT = 0
IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS
IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS
IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS
IOC_NONE, IOC_WRITE, IOC_READ = 0, 1, 2


def _IOC(direction, typ, nr, size):
    if not 0 <= size < (1 << IOC_SIZEBITS):
        raise ValueError(f"ioctl size {size} does not fit")
    return ((direction << IOC_DIRSHIFT) | (typ << IOC_TYPESHIFT)
            | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT))


def _IO(typ, nr):
    return _IOC(IOC_NONE, typ, nr, 0)


def _IOR(typ, nr, size):
    return _IOC(IOC_READ, typ, nr, size)


def _IOW(typ, nr, size):
    return _IOC(IOC_WRITE, typ, nr, size)


def _IOWR(typ, nr, size):
    return _IOC(IOC_READ | IOC_WRITE, typ, nr, size)


# ---- <linux/vhost_types.h> structures (little-endian x86_64 layout) ------
VHOST_VIRTIO = 0xAF
STD_STRUCTS = {
    "vhost_vring_state": "<II",          # index, num
    "vhost_vring_file": "<Ii",           # index, fd
    "vhost_vring_addr": "<IIQQQQ",       # index, flags, desc, used, avail, log
    "vhost_memory": "<II",               # nregions, padding (+ regions[])
    "vhost_memory_region": "<QQQQ",      # gpa, size, uaddr, flags_padding
}
_SZ = {k: struct.calcsize(v) for k, v in STD_STRUCTS.items()}

STD_IOCTLS = {
    "VHOST_GET_FEATURES": _IOR(VHOST_VIRTIO, 0x00, 8),
    "VHOST_SET_FEATURES": _IOW(VHOST_VIRTIO, 0x00, 8),
    "VHOST_SET_OWNER": _IO(VHOST_VIRTIO, 0x01),
    "VHOST_RESET_OWNER": _IO(VHOST_VIRTIO, 0x02),
    "VHOST_SET_MEM_TABLE": _IOW(VHOST_VIRTIO, 0x03, _SZ["vhost_memory"]),
    "VHOST_SET_LOG_BASE": _IOW(VHOST_VIRTIO, 0x04, 8),
    "VHOST_SET_LOG_FD": _IOW(VHOST_VIRTIO, 0x07, 4),
    "VHOST_SET_VRING_NUM": _IOW(VHOST_VIRTIO, 0x10, _SZ["vhost_vring_state"]),
    "VHOST_SET_VRING_ADDR": _IOW(VHOST_VIRTIO, 0x11, _SZ["vhost_vring_addr"]),
    "VHOST_SET_VRING_BASE": _IOW(VHOST_VIRTIO, 0x12, _SZ["vhost_vring_state"]),
    "VHOST_GET_VRING_BASE": _IOWR(VHOST_VIRTIO, 0x12, _SZ["vhost_vring_state"]),
    "VHOST_SET_VRING_ENDIAN": _IOW(VHOST_VIRTIO, 0x13, _SZ["vhost_vring_state"]),
    "VHOST_SET_VRING_KICK": _IOW(VHOST_VIRTIO, 0x20, _SZ["vhost_vring_file"]),
    "VHOST_SET_VRING_CALL": _IOW(VHOST_VIRTIO, 0x21, _SZ["vhost_vring_file"]),
    "VHOST_SET_VRING_ERR": _IOW(VHOST_VIRTIO, 0x22, _SZ["vhost_vring_file"]),
    # both _IOW in <linux/vhost.h>, GET included (fixed ABI since Linux 4.6)
    "VHOST_SET_VRING_BUSYLOOP_TIMEOUT": _IOW(VHOST_VIRTIO, 0x23, _SZ["vhost_vring_state"]),
    "VHOST_GET_VRING_BUSYLOOP_TIMEOUT": _IOW(VHOST_VIRTIO, 0x24, _SZ["vhost_vring_state"]),
    "VHOST_SET_BACKEND_FEATURES": _IOW(VHOST_VIRTIO, 0x25, 8),
    "VHOST_GET_BACKEND_FEATURES": _IOR(VHOST_VIRTIO, 0x26, 8),
}

# The module's longest VHOST_SET_VRING_BUSYLOOP_TIMEOUT in microseconds (kmod-src/vblk.h
# VBLK_MAX_BUSYLOOP_US; longer ones get EINVAL).
MAX_BUSYLOOP_US = 10000

# ---- header discovery ----------------------------------------------------
HEADER_REL = Path("include/uapi/linux/vhost_blk.h")


def find_header():
    """Locate vhost_blk.h: $VHOST_BLK_UAPI_HEADER, the repo, /usr/src (dkms), /usr/lib/vhost-blk (tools)."""
    env = os.environ.get("VHOST_BLK_UAPI_HEADER")
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"$VHOST_BLK_UAPI_HEADER={env} does not exist")
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "kmod-src" / HEADER_REL
    if repo.is_file():
        return repo
    for cand in sorted(glob.glob(f"/usr/src/vhost-blk-*/{HEADER_REL}"), reverse=True):
        return Path(cand)
    if os.path.isfile("/usr/lib/vhost-blk/vhost_blk.h"):      # vhost-blk-tools
        return Path("/usr/lib/vhost-blk/vhost_blk.h")
    if os.path.isfile("/usr/include/linux/vhost_blk.h"):
        return Path("/usr/include/linux/vhost_blk.h")
    raise FileNotFoundError(
        "vhost_blk.h not found: set $VHOST_BLK_UAPI_HEADER or install vhost-blk-dkms")


# ---- a tiny parser for the subset of C the header uses -------------------
_CTYPES = {
    "__u8": ("B", 1), "__s8": ("b", 1), "__u16": ("H", 2), "__s16": ("h", 2),
    "__u32": ("I", 4), "__s32": ("i", 4), "__u64": ("Q", 8), "__s64": ("q", 8),
    "__le16": ("H", 2), "__le32": ("I", 4), "__le64": ("Q", 8),
    "int": ("i", 4), "unsigned int": ("I", 4),
}
_IOC_MACROS = {"_IO": _IO, "_IOR": _IOR, "_IOW": _IOW, "_IOWR": _IOWR}


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


class StructDef:
    """Layout of a C struct: fields (name, fmt, count, offset), size, format."""

    def __init__(self, name, fields):
        self.name = name
        self.fields = []
        off, align_max, fmt = 0, 1, "<"
        for fname, ctype, count in fields:
            code, size = _CTYPES[ctype]
            pad = (-off) % size
            if pad:
                fmt += f"{pad}x"
                off += pad
            self.fields.append((fname, code, count, off))
            fmt += (f"{count}{code}" if count != 1 else code)
            off += size * count
            align_max = max(align_max, size)
        tail = (-off) % align_max
        if tail:
            fmt += f"{tail}x"
            off += tail
        self.size = off
        self.format = fmt
        assert struct.calcsize(fmt) == off

    def field_names(self):
        return [f[0] for f in self.fields]

    def pack(self, **values):
        unknown = set(values) - set(self.field_names())
        if unknown:
            raise KeyError(f"{self.name}: unknown fields {sorted(unknown)}")
        args = []
        for fname, _code, count, _off in self.fields:
            v = values.get(fname, 0)
            if count == 1:
                args.append(v)
            else:
                v = list(v) if v else [0] * count
                args.extend(v)
        return struct.pack(self.format, *args)

    def unpack(self, data):
        raw = struct.unpack(self.format, bytes(data[:self.size]))
        out, i = {}, 0
        for fname, _code, count, _off in self.fields:
            if count == 1:
                out[fname] = raw[i]
            else:
                out[fname] = list(raw[i:i + count])
            i += count
        return out


def _parse_structs(text, consts):
    structs = {}
    for m in re.finditer(r"struct\s+(\w+)\s*\{(.*?)\}\s*;", text, flags=re.S):
        fields = []
        for decl in m.group(2).split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            fm = re.fullmatch(r"(unsigned int|\w+)\s+(\w+)\s*(?:\[\s*(\w+)\s*\])?", decl)
            if not fm or fm.group(1) not in _CTYPES:
                raise ValueError(f"struct {m.group(1)}: cannot parse field '{decl}'")
            count = _eval_int(fm.group(3), consts) if fm.group(3) else 1
            fields.append((fm.group(2), fm.group(1), count))
        structs[m.group(1)] = StructDef(m.group(1), fields)
    return structs


def _eval_int(expr, env):
    """Evaluate a C integer constant expression of ints, names, << | & ~ ( )."""
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr.strip())
    tokens = re.findall(r"0[xX][0-9a-fA-F]+|\d+|\w+|<<|>>|[|&~()+\-]", expr)
    if "".join(tokens) != re.sub(r"\s+", "", expr):
        raise ValueError(f"unsupported expression: {expr!r}")
    py = []
    for t in tokens:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", t):
            py.append(str(int(t, 0)))
        elif re.fullmatch(r"\w+", t):
            if t not in env or not isinstance(env[t], int):
                raise ValueError(f"unknown name {t} in {expr!r}")
            py.append(str(env[t]))
        else:
            py.append(t)
    return int(eval(" ".join(py), {"__builtins__": {}}, {}))  # tokens checked above


class Abi:
    """Everything parsed from the header, plus the standard vhost numbers."""

    def __init__(self, path=None):
        self.path = Path(path) if path else find_header()
        text = _strip_comments(self.path.read_text())
        defines = [(m.group(1), m.group(2))
                   for m in re.finditer(r"^[ \t]*#define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$", text, flags=re.M)
                   if not m.group(1).startswith("_UAPI")]
        ioctl_re = r"(_IOW?R?|_IO)\(\s*(\w+)\s*,\s*(\w+)\s*(?:,\s*(.+?))?\)"
        self.consts = {"VHOST_VIRTIO": VHOST_VIRTIO}
        self.strings = {}
        # constants first: array sizes in the structures use them, ioctl numbers use the structures
        for name, val in defines:
            if re.fullmatch(r'"[^"]*"', val):
                self.strings[name] = val[1:-1]
            elif not re.fullmatch(ioctl_re, val):
                self.consts[name] = _eval_int(val, self.consts)
        self.structs = _parse_structs(text, self.consts)
        self.ioctls = dict(STD_IOCTLS)
        self.our_ioctls = {}
        for name, val in defines:
            im = re.fullmatch(ioctl_re, val)
            if im:
                typ = _eval_int(im.group(2), self.consts)
                nr = _eval_int(im.group(3), self.consts)
                arg = im.group(4)
                if im.group(1) == "_IO":
                    num = _IO(typ, nr)
                else:
                    num = _IOC_MACROS[im.group(1)](typ, nr, self._sizeof(arg))
                self.ioctls[name] = num
                self.our_ioctls[name] = num

    def _sizeof(self, ctype):
        ctype = " ".join(ctype.split())
        sm = re.fullmatch(r"struct (\w+)", ctype)
        if sm:
            if sm.group(1) in self.structs:
                return self.structs[sm.group(1)].size
            if sm.group(1) in STD_STRUCTS:
                return _SZ[sm.group(1)]
            raise ValueError(f"unknown struct {ctype}")
        return _CTYPES[ctype][1]

    def __getattr__(self, name):
        for table in ("ioctls", "consts", "strings"):
            d = self.__dict__.get(table, {})
            if name in d:
                return d[name]
        raise AttributeError(name)

    def struct(self, name):
        return self.structs[name]


_CACHED = None


def load(path=None):
    """The Abi for the default header (cached) or for an explicit path."""
    global _CACHED
    if path is not None:
        return Abi(path)
    if _CACHED is None:
        _CACHED = Abi()
    return _CACHED
