# SPDX-License-Identifier: GPL-2.0-or-later
"""vhost-blk-user: a vhost-user block back end whose data path is /dev/vhost-blk.

One process serves one disk on one unix socket; QEMU (``-device vhost-user-blk-pci``, or libvirt
``<disk type='vhostuser'>``) is the client. The process only relays control messages: guest
memory, ring addresses and eventfds go to the kernel module, which serves the guest's requests
itself. One client at a time; when it goes away the kernel device is closed (requests in flight
are drained first) and the next client (QEMU reconnecting) gets a fresh one.

    python3 -m vhostblk.vu_daemon --socket /run/vhost-blk/vm1-vdb.sock --backing /srv/vm1.raw
"""

import argparse
import errno
import fcntl
import grp
import logging
import os
import selectors
import signal
import socket
import stat
import sys

from . import abi as abimod
from .vu_proto import ProtocolError, recv_message, send_message
from .vu_session import Backing, Session

LOG = logging.getLogger("vhost-blk-user")
MESSAGE_TIMEOUT_S = 10


class ConfigError(Exception):
    """Bad command line or backing: the daemon does not start."""


def open_backing(path, readonly, cache, shared, abi):
    """Open (and lock) the backing file or block device once, for every session."""
    flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
    if cache == "none":
        flags |= os.O_DIRECT
    try:
        fd = os.open(path, flags)
    except OSError as e:
        hint = " (the filesystem may not support O_DIRECT: try --cache writeback)" \
            if e.errno == errno.EINVAL and cache == "none" else ""
        raise ConfigError(f"cannot open backing {path}: {e.strerror}{hint}") from e
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            raise ConfigError(f"backing {path} is neither a regular file nor a block device")
        if not shared:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"backing {path} is locked by another vhost-blk-user "
                                  "(two writers would corrupt it; --shared only for live migration)") from None
    except BaseException:
        os.close(fd)
        raise
    return fd, (abi.VHOST_BLK_BACKEND_F_READONLY if readonly else 0)


def parse_serial(text):
    raw = text.encode("ascii", "strict")
    if len(raw) > 20:
        raise ConfigError(f"--serial {text!r}: at most 20 ASCII characters (virtio-blk id)")
    return raw


def bind_socket(path, mode, group):
    """Listen on ``path``; a stale socket file (nobody listening) is replaced, anything else is not."""
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"--socket {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            raise ConfigError(f"--socket {path}: another back end is listening on it")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
        finally:
            probe.close()
    # Bound and listening under a temporary name, then renamed: a client that sees the path can
    # connect (no ECONNREFUSED window between bind and listen), with its final owner and mode.
    tmp = f"{path}.{os.getpid()}.tmp"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(tmp)
        sock.listen(2)
        if group is not None:
            os.chown(tmp, -1, group)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        sock.close()
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    finally:
        os.umask(old)
    return sock


def sd_notify(state):
    """Tell systemd (Type=notify) how we are; nothing without $NOTIFY_SOCKET."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(addr)
        s.sendall(state.encode())


class Daemon:
    def __init__(self, listener, open_device, backing, max_queues):
        self.listener = listener
        self.open_device = open_device
        self.backing = backing
        self.max_queues = max_queues
        self.client = None
        self.session = None
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ, "listen")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "stop")
        self.stopping = False
        self.sessions_served = 0

    def stop(self):
        """Async-signal-safe: the loop ends at its next turn."""
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _accept(self):
        conn, _addr = self.listener.accept()
        # a message's first byte wakes the loop; the rest must follow promptly (a client stalling
        # mid-message is dropped instead of blocking this disk's back end)
        conn.settimeout(MESSAGE_TIMEOUT_S)
        if self.client is not None:
            LOG.warning("refused a second client: this disk is already served to a connected front end")
            conn.close()
            return
        try:
            self.session = Session(self.open_device, self.backing, self.max_queues, LOG.info)
        except Exception as e:  # noqa: BLE001 - whatever the device said, the daemon stays up
            hint = " (is the vhost_blk module loaded?)" if isinstance(e, FileNotFoundError) else ""
            LOG.error("cannot set up /dev/vhost-blk for the new client: %s%s; dropping it", e, hint)
            conn.close()
            return
        self.client = conn
        self.sessions_served += 1
        self.sel.register(conn, selectors.EVENT_READ, "client")
        LOG.info("front end connected (session %d)", self.sessions_served)

    def _drop(self, why):
        if why:
            LOG.warning("dropping the front end: %s", why)
        else:
            LOG.info("front end disconnected")
        # The kernel device first: its release finishes the requests in flight and publishes them
        # in the used rings. Only then may QEMU see the socket close: it then takes the used index
        # as where the next back end resumes, and that must count every request already taken.
        self.session.close()
        self.session = None
        self.sel.unregister(self.client)
        self.client.close()
        self.client = None

    def _serve_one(self):
        try:
            msg = recv_message(self.client)
        except (ProtocolError, OSError) as e:      # OSError: reset, timeout in mid-message
            self._drop(str(e) or type(e).__name__)
            return
        if msg is None:
            self._drop(None)
            return
        try:
            reply = self.session.handle(msg)
            if reply is not None:
                send_message(self.client, reply)
        except ProtocolError as e:
            self._drop(str(e))
        except OSError as e:
            self._drop(f"{msg.name()}: {e}")

    def run(self):
        while not self.stopping:
            for key, _events in self.sel.select():
                if key.data == "listen":
                    self._accept()
                elif key.data == "client" and self.client is not None:
                    self._serve_one()
        if self.client is not None:
            self._drop(None)
        self.sel.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)


def build_parser():
    ap = argparse.ArgumentParser(
        prog="vhost-blk-user",
        description="vhost-user block back end: serves one disk on a unix socket with the "
                    "in-kernel data path of /dev/vhost-blk.")
    ap.add_argument("--socket", required=True, help="unix socket to listen on (QEMU/libvirt connect to it)")
    ap.add_argument("--backing", required=True, help="backing raw file or block device")
    ap.add_argument("--readonly", action="store_true", help="serve the disk read-only")
    ap.add_argument("--cache", choices=("none", "writeback"), default="none",
                    help="none: O_DIRECT on the backing (default); writeback: the host page cache")
    ap.add_argument("--serial", default="", help="serial the guest reads (up to 20 ASCII characters)")
    ap.add_argument("--queues", type=int, default=16, help="most virtqueues a front end may use (default 16)")
    ap.add_argument("--shared", action="store_true",
                    help="do not lock the backing (only for the destination of a live migration)")
    ap.add_argument("--socket-mode", type=lambda s: int(s, 8), default=0o660, help="socket mode (default 0660)")
    ap.add_argument("--socket-group", default=None, help="group owning the socket (e.g. the one QEMU runs in)")
    ap.add_argument("--device", default=None, help="device node (default /dev/vhost-blk)")
    ap.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)   # tests: in-process model
    ap.add_argument("--verbose", action="store_true", help="log every session step")
    return ap


def device_opener(args, abi):
    if args.fake:
        from .fakedev import FakeVhostBlk
        return lambda: FakeVhostBlk(abi)
    from .device import VhostBlkDevice
    return lambda: VhostBlkDevice(args.device, abi)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def main(argv=None):
    args = build_parser().parse_args(argv)
    # held until the handlers are in: a stop that comes right after the socket appears (systemd
    # stopping a unit it just started) must remove the socket, not kill the process beside it
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"vhost-blk-user[{os.path.basename(args.socket)}]: %(message)s", stream=sys.stderr)
    try:
        if not 1 <= args.queues <= 64:
            raise ConfigError(f"--queues {args.queues}: 1 to 64")
        group = None
        if args.socket_group is not None:
            try:
                group = grp.getgrnam(args.socket_group).gr_gid
            except KeyError:
                raise ConfigError(f"--socket-group {args.socket_group}: no such group") from None
        abi = abimod.load()
        serial = parse_serial(args.serial)
        fd, flags = open_backing(args.backing, args.readonly, args.cache, args.shared, abi)
        listener = bind_socket(args.socket, args.socket_mode, group)
    except (ConfigError, UnicodeEncodeError, OSError) as e:
        LOG.error("%s", e)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return 2
    daemon = Daemon(listener, device_opener(args, abi), Backing(fd, args.readonly, flags, serial), args.queues)
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: daemon.stop())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    LOG.info("serving %s%s on %s", args.backing, " read-only" if args.readonly else "", args.socket)
    sd_notify("READY=1")
    try:
        daemon.run()
    finally:
        listener.close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
        os.close(fd)
    LOG.info("stopped after %d session(s)", daemon.sessions_served)
    return 0


if __name__ == "__main__":
    sys.exit(main())
