# SPDX-License-Identifier: GPL-2.0-or-later
"""One vhost-user connection served by one /dev/vhost-blk device.

Each vhost-user request maps onto the vhost ioctl of the same meaning (BRIEF section 7). What
this layer adds: guest memory arrives as fds and is mapped here (this process is the device's
owner, so the kernel worker reads guest memory through these mappings); vring addresses are
translated from the front end's address space to ours; kick, call and error eventfds are handed
to the kernel untouched, so guest kicks and completion interrupts never pass through this
process. Rings start disabled when protocol features are negotiated: a ring's kick reaches the
kernel only once the ring is enabled.
"""

import errno
import os
import time

from . import virtio as V
from .vu_config import CONFIG_ONLY_FEATURES, config_slice, config_values
from .vu_memory import MemoryTable, map_fd
from .vu_proto import (
    CONFIG_HEADER,
    F_PROTOCOL_FEATURES,
    LOG,
    MAX_CONFIG_SIZE,
    U64,
    VRING_ADDR,
    VRING_IDX_MASK,
    VRING_NOFD,
    VRING_STATE,
    ProtocolError,
    ProtoF,
    Req,
    bits,
    reply_to,
    unpack_exact,
)

PROTOCOL_FEATURES = bits(ProtoF.MQ, ProtoF.LOG_SHMFD, ProtoF.REPLY_ACK, ProtoF.CONFIG)
LOG_ALL = V.bit(V.VHOST_F_LOG_ALL)
ACK_OK, ACK_FAILED = 0, 1


class Backing:
    """The backing file or block device of one disk, opened once by the daemon."""

    def __init__(self, fd, readonly, flags, serial=b""):
        self.fd, self.readonly, self.flags, self.serial = fd, readonly, flags, serial


class _Ring:
    __slots__ = ("kick", "enabled", "in_kernel")

    def __init__(self, enabled):
        self.kick = -1            # our copy of the front end's kick eventfd
        self.enabled = enabled
        self.in_kernel = False    # the kernel polls self.kick


class Session:
    """State of one front end. ``handle(msg)`` returns the reply Message or None."""

    def __init__(self, open_device, backing, max_queues, log):
        self.log = log
        self.backing = backing
        self.dev = open_device()
        try:
            self.dev.set_owner()
            if backing.serial:
                self.dev.set_serial(backing.serial)
            self.dev.set_backend(backing.fd, backing.flags)
            self.info = self.dev.get_info()
            self.kernel_features = self.dev.get_features()
        except BaseException:
            self.dev.close()
            raise
        self.queues = max(1, min(max_queues, self.info["max_queues"]))
        self.offered = self.kernel_features | CONFIG_ONLY_FEATURES | (1 << F_PROTOCOL_FEATURES)
        if not self.queues > 1:
            self.offered &= ~V.bit(V.BLK_F_MQ)
        self.acked = 0
        self.protocol = 0
        self.mem = None
        self.log_map = None
        self.rings = {}

    # helpers -------------------------------------------------------------
    def _ring(self, index, what):
        if index >= self.queues:
            raise ProtocolError(f"{what}: vring {index} (this disk has {self.queues})")
        if index not in self.rings:
            # without protocol features a ring starts enabled (vhost-user.rst, "Ring states")
            self.rings[index] = _Ring(enabled=not self.acked & (1 << F_PROTOCOL_FEATURES)
                                      and not self.protocol)
        return self.rings[index]

    def _sync_kick(self, index, ring):
        want = ring.enabled and ring.kick >= 0
        if want:
            self.dev.set_vring_kick(index, ring.kick)
        elif ring.in_kernel:
            self.dev.set_vring_kick(index, -1)
        ring.in_kernel = want

    def config(self):
        flags = self.info["flags"]
        c = self.dev.abi.consts
        return config_values(self.info, self.queues,
                             discard=bool(flags & c["VHOST_BLK_INFO_F_DISCARD"]),
                             write_zeroes=bool(flags & c["VHOST_BLK_INFO_F_WRITE_ZEROES"]))

    def _one_fd(self, msg):
        if len(msg.fds) != 1:
            raise ProtocolError(f"{msg.name()}: {len(msg.fds)} file descriptors, expected 1")
        return msg.fds.pop()

    # dispatch ------------------------------------------------------------
    def handle(self, msg):
        """Serve one message. OSError from the kernel becomes a failed REPLY_ACK when the front end
        asked for one, else it propagates (the connection is then dropped)."""
        try:
            req = Req(msg.request)
        except ValueError:
            raise ProtocolError(f"unknown request {msg.request}") from None
        handler = getattr(self, "_" + req.name.lower(), None)
        if handler is None:
            raise ProtocolError(f"{req.name} is not supported by this back end")
        ack = msg.need_reply and self.protocol & (1 << ProtoF.REPLY_ACK)
        try:
            reply = handler(msg)
        except OSError as e:
            if not ack:
                raise
            self.log(f"{req.name} failed: {os.strerror(e.errno) if e.errno else e}")
            return reply_to(msg, U64.pack(ACK_FAILED))
        finally:
            msg.close_fds()
        if reply is None and ack:
            reply = reply_to(msg, U64.pack(ACK_OK))
        return reply

    # features --------------------------------------------------------------
    def _get_features(self, msg):
        return reply_to(msg, U64.pack(self.offered))

    def _set_features(self, msg):
        f = msg.u64()
        if f & ~self.offered:
            raise ProtocolError(f"SET_FEATURES {f:#x}: bits {f & ~self.offered:#x} were not offered")
        self.dev.set_features(f & self.kernel_features)
        if (f ^ self.acked) & LOG_ALL:
            # QEMU turns it on when a live migration starts and off when it ends or fails
            self.log(f"dirty logging {'on' if f & LOG_ALL else 'off'}")
        self.acked = f

    def _get_protocol_features(self, msg):
        return reply_to(msg, U64.pack(PROTOCOL_FEATURES))

    def _set_protocol_features(self, msg):
        f = msg.u64()
        if f & ~PROTOCOL_FEATURES:
            raise ProtocolError(f"SET_PROTOCOL_FEATURES {f:#x}: bits {f & ~PROTOCOL_FEATURES:#x} were not offered")
        self.protocol = f

    def _get_queue_num(self, msg):
        return reply_to(msg, U64.pack(self.queues))

    def _set_owner(self, msg):
        return None       # this process became the kernel device's owner when the session began

    # memory and dirty log --------------------------------------------------
    def _set_mem_table(self, msg):
        table = MemoryTable(msg.payload, msg.fds)
        try:
            self.dev.set_mem_table(table.kernel_regions())
        except BaseException:
            table.close()
            raise
        old, self.mem = self.mem, table
        if old:
            old.close()            # the kernel uses the new table from here on

    def _set_log_base(self, msg):
        size, offset = unpack_exact(LOG, msg.payload, "SET_LOG_BASE")
        fd = self._one_fd(msg)
        try:
            mapping, addr = map_fd(fd, size, offset, "SET_LOG_BASE")
        finally:
            os.close(fd)
        try:
            self.dev.set_log_base(addr)
        except BaseException:
            mapping.close()
            raise
        old, self.log_map = self.log_map, mapping
        if old:
            old.close()
        if self.protocol & (1 << ProtoF.LOG_SHMFD):
            return reply_to(msg)       # QEMU waits for an empty reply

    # vrings ----------------------------------------------------------------
    def _set_vring_num(self, msg):
        index, num = unpack_exact(VRING_STATE, msg.payload, "SET_VRING_NUM")
        self._ring(index, "SET_VRING_NUM")
        self.dev.set_vring_num(index, num)

    def _set_vring_base(self, msg):
        index, base = unpack_exact(VRING_STATE, msg.payload, "SET_VRING_BASE")
        self._ring(index, "SET_VRING_BASE")
        self.dev.set_vring_base(index, base)
        self.log(f"vring {index} starts at avail index {base}")

    def _get_vring_base(self, msg):
        index, _num = unpack_exact(VRING_STATE, msg.payload, "GET_VRING_BASE")
        ring = self._ring(index, "GET_VRING_BASE")
        inflight = self.dev.get_info()["inflight"]        # on the whole disk, all rings
        if inflight:
            self.log(f"vring {index} stopping: {inflight} request(s) in flight on this disk, waiting for them")
        started = time.monotonic()
        base = self.dev.get_vring_base(index)   # stops the ring; requests in flight are drained
        self.log(f"vring {index} stopped at avail index {base} "
                 f"({inflight} request(s) were in flight, stopped in {time.monotonic() - started:.3f} s)")
        # a stopped ring starts again with a new SET_VRING_KICK
        if ring.in_kernel:
            self.dev.set_vring_kick(index, -1)
            ring.in_kernel = False
        if ring.kick >= 0:
            os.close(ring.kick)
            ring.kick = -1
        return reply_to(msg, VRING_STATE.pack(index, base))

    def _set_vring_addr(self, msg):
        index, flags, desc, used, avail, log = unpack_exact(VRING_ADDR, msg.payload, "SET_VRING_ADDR")
        self._ring(index, "SET_VRING_ADDR")
        if self.mem is None:
            raise ProtocolError("SET_VRING_ADDR before SET_MEM_TABLE")
        what = f"SET_VRING_ADDR {index}"
        self.dev.set_vring_addr(index, self.mem.translate(desc, what + " desc"),
                                self.mem.translate(used, what + " used"),
                                self.mem.translate(avail, what + " avail"), flags=flags, log=log)

    def _vring_fd(self, msg):
        (value,) = unpack_exact(U64, msg.payload, msg.name())
        if value & ~(VRING_IDX_MASK | VRING_NOFD):
            raise ProtocolError(f"{msg.name()}: unknown bits in {value:#x}")
        index = value & VRING_IDX_MASK
        ring = self._ring(index, msg.name())
        if value & VRING_NOFD:
            if msg.fds:
                raise ProtocolError(f"{msg.name()}: 'no fd' flag with a file descriptor")
            return index, ring, -1
        return index, ring, self._one_fd(msg)

    def _set_vring_kick(self, msg):
        index, ring, fd = self._vring_fd(msg)
        if fd < 0:
            raise ProtocolError("SET_VRING_KICK without an eventfd: polling rings are not supported")
        if ring.kick >= 0:
            os.close(ring.kick)
        ring.kick = fd
        ring.in_kernel = False     # the kernel drops its old kick when it gets the new one
        self._sync_kick(index, ring)

    def _hand_over_eventfd(self, msg, set_in_kernel):
        index, _ring, fd = self._vring_fd(msg)
        try:
            set_in_kernel(index, fd)             # the kernel keeps its own reference
        finally:
            if fd >= 0:
                os.close(fd)

    def _set_vring_call(self, msg):
        self._hand_over_eventfd(msg, self.dev.set_vring_call)

    def _set_vring_err(self, msg):
        self._hand_over_eventfd(msg, self.dev.set_vring_err)

    def _set_vring_enable(self, msg):
        index, enable = unpack_exact(VRING_STATE, msg.payload, "SET_VRING_ENABLE")
        if enable not in (0, 1):
            raise ProtocolError(f"SET_VRING_ENABLE {index}: {enable} is neither 0 nor 1")
        ring = self._ring(index, "SET_VRING_ENABLE")
        ring.enabled = bool(enable)
        self._sync_kick(index, ring)

    # config space ----------------------------------------------------------
    def _get_config(self, msg):
        offset, size, _flags = unpack_exact(CONFIG_HEADER, msg.payload, "GET_CONFIG")
        if size > MAX_CONFIG_SIZE or offset > MAX_CONFIG_SIZE - size:
            raise ProtocolError(f"GET_CONFIG: offset {offset} size {size} beyond {MAX_CONFIG_SIZE} bytes")
        return reply_to(msg, msg.payload[:CONFIG_HEADER.size] + config_slice(self.config(), offset, size))

    def _set_config(self, msg):
        # nothing in the config space is writable: CONFIG_WCE is not offered
        raise OSError(errno.EPERM, "the virtio-blk config space of this disk is read-only")

    # teardown ----------------------------------------------------------------
    def close(self):
        """Drop the kernel device first (its release drains requests in flight and stops the
        workers), then unmap guest memory: never the other way round."""
        if self.dev is not None:
            self.dev.close()
            self.dev = None
        for ring in self.rings.values():
            if ring.kick >= 0:
                os.close(ring.kick)
                ring.kick = -1
        if self.mem:
            self.mem.close()
            self.mem = None
        if self.log_map:
            self.log_map.close()
            self.log_map = None
