# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of VHOST_BLK_SET_SERIAL and what GET_ID returns.

- an unset serial reads back as 20 zero bytes (no id made of host facts);
- a serial is returned zero-padded, and survives a SET_BACKEND swap;
- len > 20, a non-zero reserved word or pad byte: EINVAL (checked before SET_OWNER, when it is
  also allowed).
"""

import errno

from . import virtio as V
from .blkops import read_data, simple_req
from .driver import RingError, WaitTimeout


def _get_id(lc, s):
    r = simple_req(s, V.T_GET_ID, 0, V.ID_BYTES)
    s.run(0, [r], timeout=lc.timeout)
    data = read_data(s, r)
    s.reset_scratch()
    return r.status, data


def run(lc):
    rep = lc.rep
    dev = lc.open_device()
    try:
        for name, kw in (("len 21", dict(length=21)), ("reserved != 0", dict(reserved=1)),
                         ("pad != 0", dict(pad=b"\0\0\1\0"))):
            label = f"[serial] SET_SERIAL {name} -> EINVAL"
            try:
                dev.set_serial(b"x" * 20, **kw)
                rep.check(label, False, "accepted")
            except OSError as e:
                rep.check(label, e.errno == errno.EINVAL, str(e))
        try:
            dev.set_serial(b"before-owner")
            rep.check("[serial] SET_SERIAL before SET_OWNER", True)
        except OSError as e:
            rep.check("[serial] SET_SERIAL before SET_OWNER", False, str(e))
    finally:
        dev.close()

    s = lc.session()
    try:
        st, got = _get_id(lc, s)
        rep.check("[serial] GET_ID without a serial: 20 zero bytes", st == V.S_OK and got == bytes(20),
                  f"status {st}, id {got!r}")
        full = b"VBLK-0123456789abcde"            # exactly VHOST_BLK_SERIAL_BYTES
        s.dev.set_serial(full)
        st, got = _get_id(lc, s)
        rep.check("[serial] GET_ID returns a 20-byte serial", st == V.S_OK and got == full,
                  f"status {st}, id {got!r}")
        s.dev.set_serial(b"disk-7")
        st, got = _get_id(lc, s)
        want = b"disk-7".ljust(20, b"\0")
        rep.check("[serial] shorter serial zero-padded", st == V.S_OK and got == want, repr(got))
        s.dev.set_backend(lc.fd, 0)
        st, got = _get_id(lc, s)
        rep.check("[serial] serial survives SET_BACKEND", st == V.S_OK and got == want, repr(got))
        s.dev.set_serial(b"")
        st, got = _get_id(lc, s)
        rep.check("[serial] len 0 clears it", st == V.S_OK and got == bytes(20), repr(got))
    except (OSError, RingError, WaitTimeout) as e:
        rep.check("[serial] GET_ID", False, str(e))
    finally:
        s.close()
