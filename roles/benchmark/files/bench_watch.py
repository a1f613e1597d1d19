# SPDX-License-Identifier: GPL-2.0-or-later
"""Follow a benchmark guest's console and sample host CPU time at the edges of each fio run.

    bench_watch.py CONSOLE OUT QEMU_PID OWNER_PID DAEMON_PID TIMEOUT

At every ``BENCH-RUN-BEGIN NAME`` and ``BENCH-RUN-END NAME rc=N`` line the guest prints (it pauses a
second after each), appends ``BEGIN|END NAME QEMU DAEMON WORKERS`` to OUT, in clock ticks (the
first line of OUT is ``HZ TICKS_PER_SECOND``):

- QEMU: user + system time of every thread of the QEMU process, less the time its vCPUs ran guest
  code (guest_time): what the host spends beside the guest's own work;
- DAEMON: user + system time of the vhost-blk-user back end;
- WORKERS: user + system time of the vhost_blk kernel workers owned by OWNER_PID (they are named
  vhost-blk-<owner pid>.<n>).

A PID of 0 (or one that is gone) is sampled as -1. Ends when the guest prints VHOSTBLK-L2-DONE or
panics, when QEMU is gone, or after TIMEOUT seconds.
"""

import os
import sys
import time

DONE = ('VHOSTBLK-L2-DONE', 'Kernel panic')


def stat_fields(pid):
    with open(f'/proc/{pid}/stat') as handle:
        text = handle.read()
    return text[text.rindex(')') + 2:].split()  # from field 3 (state) on


def ticks(pid, without_guest=False):
    if pid <= 0:
        return -1
    try:
        fields = stat_fields(pid)
    except (OSError, ValueError):
        return -1
    total = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    if without_guest and len(fields) > 40:
        total -= int(fields[40])  # guest_time (field 43)
    return max(total, 0)


def worker_ticks(owner):
    if owner <= 0:
        return -1
    prefix = f'vhost-blk-{owner}.'
    total = 0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/comm') as handle:
                if not handle.read().strip().startswith(prefix):
                    continue
            total += ticks(int(entry))
        except OSError:
            continue
    return total


def main(argv):
    console, out = argv[0], argv[1]
    qemu, owner, daemon = (int(value) for value in argv[2:5])
    deadline = time.monotonic() + float(argv[5])
    with open(out, 'w') as samples:
        samples.write(f"HZ {os.sysconf('SC_CLK_TCK')}\n")
        samples.flush()
        while not os.path.exists(console) and time.monotonic() < deadline:
            time.sleep(0.2)
        with open(console, errors='replace') as feed:
            pending = ''
            while time.monotonic() < deadline:
                chunk = feed.read()
                if not chunk:
                    if qemu > 0 and not os.path.exists(f'/proc/{qemu}'):
                        return 0
                    time.sleep(0.05)
                    continue
                pending += chunk
                *lines, pending = pending.split('\n')
                for line in lines:
                    line = line.strip()
                    words = line.split()
                    if len(words) >= 2 and words[0] in ('BENCH-RUN-BEGIN', 'BENCH-RUN-END'):
                        edge = 'BEGIN' if words[0] == 'BENCH-RUN-BEGIN' else 'END'
                        samples.write(f'{edge} {words[1]} {ticks(qemu, without_guest=True)} {ticks(daemon)} '
                                      f'{worker_ticks(owner)}\n')
                        samples.flush()
                    elif line.startswith(DONE):
                        return 0
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
