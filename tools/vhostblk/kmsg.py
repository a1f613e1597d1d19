# SPDX-License-Identifier: GPL-2.0-or-later
"""Watch the kernel log for oopses during a run (/dev/kmsg, else `dmesg`)."""

import errno
import os
import re
import subprocess

BAD = re.compile(r"BUG:|WARNING:|Oops|general protection|KASAN|UBSAN|stack guard|"
                 r"kernel BUG|cut here|Call Trace|soft lockup|hung_task|blocked for more than|"
                 r"rcu.*stall|refcount_t:|list_(add|del) corruption|double free|"
                 r"use-after-free|stack-protector|Kernel panic|suspected memory leak")


class KmsgWatch:
    def __init__(self):
        self.fd = None
        self.base = None
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_END)
            self.source = "/dev/kmsg"
        except OSError:
            self.fd = None
            self.base = self._dmesg()
            self.source = "dmesg" if self.base is not None else None

    @staticmethod
    def _dmesg():
        try:
            return subprocess.run(["dmesg"], capture_output=True, text=True,
                                  timeout=30, check=False).stdout.splitlines()
        except (OSError, subprocess.SubprocessError):
            return None

    def new_lines(self):
        """Kernel log lines that appeared since construction (None: log unreadable)."""
        if self.fd is not None:
            out = []
            while True:
                try:
                    rec = os.read(self.fd, 8192)
                except OSError as e:
                    if e.errno == errno.EAGAIN:
                        break
                    if e.errno == errno.EPIPE:      # overwritten records: keep reading
                        out.append("(kmsg records lost: log wrapped)")
                        continue
                    raise
                if not rec:
                    break
                text = rec.decode("utf-8", "replace")
                out.append(text.split(";", 1)[-1].rstrip("\n"))
            return out
        if self.base is None:
            return None
        now = self._dmesg() or []
        return now[len(self.base):]

    def bad_lines(self):
        lines = self.new_lines()
        if lines is None:
            return None
        return [ln for ln in lines if BAD.search(ln)]

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def report_clean(rep, watch):
    """The "kernel log clean" check of a run: ``watch`` (a KmsgWatch, closed here) found no bad
    line; a skip when the run was told not to watch (``watch`` None, --no-kmsg)."""
    if watch is None:
        rep.skip("kernel log clean", "--no-kmsg")
        return
    bad = watch.bad_lines()
    watch.close()
    if bad is None:
        rep.check("kernel log clean", False, "could not read the kernel log")
    else:
        rep.check(f"kernel log clean ({watch.source})", not bad,
                  "; ".join(bad[:5]) if bad else "no BUG/WARN/Oops/KASAN/lockdep lines")
