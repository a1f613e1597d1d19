# SPDX-License-Identifier: GPL-2.0-or-later
"""vhost-user wire format: message header, request numbers, payloads, fds over SCM_RIGHTS.

From QEMU's docs/interop/vhost-user.rst. Everything is little-endian; a message is a 12-byte
header (request, flags, payload size) then the payload; file descriptors travel as ancillary
data of the header's first byte.
"""

import array
import enum
import socket
import struct

HEADER = struct.Struct("<III")
VERSION = 0x1
FLAG_VERSION_MASK = 0x3
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8

# Largest payload we accept: SET_MEM_TABLE with 8 regions is 264 bytes, GET_CONFIG 12 + 256.
MAX_PAYLOAD = 4096
MAX_FDS = 8
MAX_CONFIG_SIZE = 256
MAX_REGIONS = 8

# virtio feature bit: the back end speaks protocol features
F_PROTOCOL_FEATURES = 30


class Req(enum.IntEnum):
    GET_FEATURES = 1
    SET_FEATURES = 2
    SET_OWNER = 3
    RESET_OWNER = 4
    SET_MEM_TABLE = 5
    SET_LOG_BASE = 6
    SET_LOG_FD = 7
    SET_VRING_NUM = 8
    SET_VRING_ADDR = 9
    SET_VRING_BASE = 10
    GET_VRING_BASE = 11
    SET_VRING_KICK = 12
    SET_VRING_CALL = 13
    SET_VRING_ERR = 14
    GET_PROTOCOL_FEATURES = 15
    SET_PROTOCOL_FEATURES = 16
    GET_QUEUE_NUM = 17
    SET_VRING_ENABLE = 18
    SEND_RARP = 19
    NET_SET_MTU = 20
    SET_BACKEND_REQ_FD = 21
    IOTLB_MSG = 22
    SET_VRING_ENDIAN = 23
    GET_CONFIG = 24
    SET_CONFIG = 25
    GET_INFLIGHT_FD = 31
    SET_INFLIGHT_FD = 32
    RESET_DEVICE = 34
    VRING_KICK = 35
    GET_MAX_MEM_SLOTS = 36
    ADD_MEM_REG = 37
    REM_MEM_REG = 38
    SET_STATUS = 39
    GET_STATUS = 40


class ProtoF(enum.IntEnum):
    MQ = 0
    LOG_SHMFD = 1
    RARP = 2
    REPLY_ACK = 3
    MTU = 4
    BACKEND_REQ = 5
    CROSS_ENDIAN = 6
    CRYPTO_SESSION = 7
    PAGEFAULT = 8
    CONFIG = 9
    BACKEND_SEND_FD = 10
    HOST_NOTIFIER = 11
    INFLIGHT_SHMFD = 12
    RESET_DEVICE = 13
    INBAND_NOTIFICATIONS = 14
    CONFIGURE_MEM_SLOTS = 15
    STATUS = 16


U64 = struct.Struct("<Q")
VRING_STATE = struct.Struct("<II")            # index, num
VRING_ADDR = struct.Struct("<IIQQQQ")         # index, flags, desc, used, avail, log
MEM_HEADER = struct.Struct("<II")             # nregions, padding
MEM_REGION = struct.Struct("<QQQQ")           # gpa, size, user address, mmap offset
LOG = struct.Struct("<QQ")                    # mmap size, mmap offset
CONFIG_HEADER = struct.Struct("<III")         # offset, size, flags

# SET_VRING_KICK/CALL/ERR payload: vring index in bits 0-7, bit 8 = no fd attached
VRING_IDX_MASK = 0xFF
VRING_NOFD = 1 << 8


class ProtocolError(Exception):
    """The peer sent something the protocol does not allow: drop the connection."""


class Message:
    __slots__ = ("request", "flags", "payload", "fds")

    def __init__(self, request, payload=b"", fds=(), flags=VERSION):
        self.request = request
        self.flags = flags
        self.payload = bytes(payload)
        self.fds = list(fds)

    @property
    def need_reply(self):
        return bool(self.flags & FLAG_NEED_REPLY)

    def name(self):
        try:
            return Req(self.request).name
        except ValueError:
            return f"request {self.request}"

    def u64(self):
        return unpack_exact(U64, self.payload, self.name())[0]

    def close_fds(self):
        for fd in self.fds:
            try:
                socket.close(fd)
            except OSError:
                pass
        self.fds = []


def unpack_exact(st, payload, what):
    if len(payload) < st.size:
        raise ProtocolError(f"{what}: payload of {len(payload)} bytes, need {st.size}")
    return st.unpack_from(payload)


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("peer closed the connection in the middle of a message")
        buf += chunk
    return bytes(buf)


def recv_message(sock):
    """Read one message; None on a clean end of stream (peer closed between messages)."""
    fds = array.array("i")
    data, anc, msg_flags, _addr = sock.recvmsg(HEADER.size, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[:len(cdata) - (len(cdata) % fds.itemsize)])
    msg = Message(0, fds=fds)
    if not data:
        msg.close_fds()
        return None
    try:
        if msg_flags & socket.MSG_CTRUNC:
            raise ProtocolError(f"more than {MAX_FDS} file descriptors with one message")
        if len(data) < HEADER.size:
            data += _recv_exact(sock, HEADER.size - len(data))
        msg.request, msg.flags, size = HEADER.unpack(data)
        if msg.flags & FLAG_VERSION_MASK != VERSION:
            raise ProtocolError(f"{msg.name()}: protocol version {msg.flags & FLAG_VERSION_MASK}, "
                                f"only {VERSION} is spoken")
        if size > MAX_PAYLOAD:
            raise ProtocolError(f"{msg.name()}: payload of {size} bytes (at most {MAX_PAYLOAD})")
        msg.payload = _recv_exact(sock, size) if size else b""
    except BaseException:
        msg.close_fds()
        raise
    return msg


def send_message(sock, msg):
    data = HEADER.pack(msg.request, msg.flags, len(msg.payload)) + msg.payload
    anc = []
    if msg.fds:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", msg.fds).tobytes())]
    sock.sendmsg([data], anc)


def reply_to(msg, payload=b""):
    return Message(msg.request, payload, flags=VERSION | FLAG_REPLY)


def bits(*numbers):
    out = 0
    for n in numbers:
        out |= 1 << n
    return out
