# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test checks of the module's system-wide limits (module parameters, root only).

- max_devices = 0: VHOST_SET_OWNER fails with EMFILE; with the old value back it works;
- max_workers = 0: VHOST_SET_VRING_KICK (which starts the queue's worker) fails with ENOSPC.
The parameters are always restored.
"""

import errno
import os


def _param_check(lc, param, value, action, want_errno, name):
    probe = lc.open_device()
    cls = type(probe)
    probe.close()
    try:
        old = cls.module_param(param, value)
    except PermissionError as e:
        lc.rep.skip(name, f"cannot set {param} (needs root): {e}")
        return
    except (OSError, KeyError) as e:
        lc.rep.check(name, False, f"no parameter {param}: {e}")
        return
    try:
        dev = lc.open_device()
        try:
            action(dev, limited=True)
            lc.rep.check(name, False, "accepted")
        except OSError as e:
            lc.rep.check(name, e.errno == want_errno, str(e))
        finally:
            dev.close()
    finally:
        cls.module_param(param, old)
    dev = lc.open_device()
    try:
        action(dev, limited=False)
        lc.rep.check(f"{name}: works again with {param}={old}", True)
    except OSError as e:
        lc.rep.check(f"{name}: works again with {param}={old}", False, str(e))
    finally:
        dev.close()


def _owner(dev, limited):
    dev.set_owner()


def _kick(dev, limited):
    dev.set_owner()
    efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        dev.set_vring_kick(0, efd)
    finally:
        os.close(efd)


def run(lc):
    _param_check(lc, "max_devices", 0, _owner, errno.EMFILE,
                 "[limits] max_devices=0: SET_OWNER -> EMFILE")
    _param_check(lc, "max_workers", 0, _kick, errno.ENOSPC,
                 "[limits] max_workers=0: SET_VRING_KICK -> ENOSPC")
