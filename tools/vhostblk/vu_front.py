# SPDX-License-Identifier: GPL-2.0-or-later
"""A vhost-user front end with the methods of device.VhostBlkDevice: the exerciser's driver can
run its rings through a vhost-blk-user back end exactly as it does through /dev/vhost-blk.

What QEMU does on start, in the same order: GET_FEATURES, GET/SET_PROTOCOL_FEATURES,
GET_QUEUE_NUM, SET_OWNER, then per ring NUM, BASE, ADDR, KICK, CALL and SET_VRING_ENABLE.
Guest memory must be a guestmem.GuestMemory (memfd-backed): its fd goes with SET_MEM_TABLE.
"""

import errno
import socket

from . import guestmem
from .vu_proto import (
    CONFIG_HEADER,
    F_PROTOCOL_FEATURES,
    FLAG_NEED_REPLY,
    LOG,
    MEM_HEADER,
    MEM_REGION,
    U64,
    VERSION,
    VRING_ADDR,
    VRING_NOFD,
    VRING_STATE,
    Message,
    ProtocolError,
    ProtoF,
    Req,
    bits,
    recv_message,
    send_message,
)

WANTED_PROTOCOL = bits(ProtoF.MQ, ProtoF.LOG_SHMFD, ProtoF.REPLY_ACK, ProtoF.CONFIG)


class VhostUserFront:
    def __init__(self, path, abi=None, timeout=30.0):
        """``timeout``: seconds any connect, send or reply may take (a stuck back end is an error,
        not a hang)."""
        self.abi = abi
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.fd = self.sock.fileno()
        self.offered = self._get_u64(Req.GET_FEATURES)
        self.protocol = 0
        if self.offered & (1 << F_PROTOCOL_FEATURES):
            self.protocol = self._get_u64(Req.GET_PROTOCOL_FEATURES) & WANTED_PROTOCOL
            self._send(Req.SET_PROTOCOL_FEATURES, U64.pack(self.protocol), ack=False)   # as QEMU: no ack
        self.max_queues = self._get_u64(Req.GET_QUEUE_NUM) if self.protocol & (1 << ProtoF.MQ) else 1

    # wire ----------------------------------------------------------------------
    def _send(self, req, payload=b"", fds=(), ack=None):
        """Send; with REPLY_ACK negotiated (and ack not False) wait for the ack and turn a failure
        into OSError, as a kernel ioctl would fail."""
        ack = bool(self.protocol & (1 << ProtoF.REPLY_ACK)) if ack is None else ack
        flags = VERSION | (FLAG_NEED_REPLY if ack else 0)
        send_message(self.sock, Message(req, payload, fds, flags))
        if ack:
            status = self._reply(req).u64()
            if status:
                raise OSError(errno.EIO, f"{Req(req).name}: the back end reported failure {status}")

    def _reply(self, req):
        msg = recv_message(self.sock)
        if msg is None:
            raise ConnectionResetError(f"back end closed the connection (waiting for {Req(req).name})")
        msg.close_fds()
        if msg.request != req:
            raise ProtocolError(f"reply to {Req(req).name} carries request {msg.request}")
        return msg

    def _get_u64(self, req):
        send_message(self.sock, Message(req))
        return self._reply(req).u64()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # the device methods ----------------------------------------------------------
    def set_owner(self):
        self._send(Req.SET_OWNER)

    def reset_owner(self):
        raise OSError(errno.EOPNOTSUPP, "a vhost-user front end reconnects instead")

    def get_features(self):
        return self.offered & ~(1 << F_PROTOCOL_FEATURES)

    def set_features(self, features):
        self._send(Req.SET_FEATURES, U64.pack(features | (self.offered & (1 << F_PROTOCOL_FEATURES))))

    def set_mem_table(self, regions):
        payload, fds = MEM_HEADER.pack(len(regions), 0), []
        for gpa, size, uaddr in regions:
            fd, offset = guestmem.backing_of(uaddr)
            payload += MEM_REGION.pack(gpa, size, uaddr, offset)
            fds.append(fd)
        self._send(Req.SET_MEM_TABLE, payload, fds)

    def set_log_base_fd(self, fd, size, offset=0):
        send_message(self.sock, Message(Req.SET_LOG_BASE, LOG.pack(size, offset), [fd]))
        if self.protocol & (1 << ProtoF.LOG_SHMFD):
            self._reply(Req.SET_LOG_BASE)

    def set_vring_num(self, index, num):
        self._send(Req.SET_VRING_NUM, VRING_STATE.pack(index, num))

    def set_vring_base(self, index, base):
        self._send(Req.SET_VRING_BASE, VRING_STATE.pack(index, base))

    def get_vring_base(self, index):
        send_message(self.sock, Message(Req.GET_VRING_BASE, VRING_STATE.pack(index, 0)))
        return VRING_STATE.unpack(self._reply(Req.GET_VRING_BASE).payload[:VRING_STATE.size])[1]

    def set_vring_addr(self, index, desc, used, avail, flags=0, log=0):
        self._send(Req.SET_VRING_ADDR, VRING_ADDR.pack(index, flags, desc, used, avail, log))

    def _vring_fd(self, req, index, fd):
        if fd < 0:
            self._send(req, U64.pack(index | VRING_NOFD))
        else:
            self._send(req, U64.pack(index), [fd])

    def set_vring_kick(self, index, fd):
        self._vring_fd(Req.SET_VRING_KICK, index, fd)
        if self.protocol:
            self.set_vring_enable(index, True)

    def set_vring_call(self, index, fd):
        self._vring_fd(Req.SET_VRING_CALL, index, fd)

    def set_vring_err(self, index, fd):
        self._vring_fd(Req.SET_VRING_ERR, index, fd)

    def set_vring_enable(self, index, enable):
        self._send(Req.SET_VRING_ENABLE, VRING_STATE.pack(index, int(enable)))

    def set_vring_busyloop_timeout(self, index, usecs):
        raise OSError(errno.EOPNOTSUPP, "busy polling is the back end's setting under vhost-user")

    def get_config(self, offset=0, size=60):
        send_message(self.sock, Message(Req.GET_CONFIG, CONFIG_HEADER.pack(offset, size, 0) + bytes(size)))
        return self._reply(Req.GET_CONFIG).payload[CONFIG_HEADER.size:]

    def set_backend(self, fd, flags=0):
        raise OSError(errno.EOPNOTSUPP, "the back end owns the backing under vhost-user")
