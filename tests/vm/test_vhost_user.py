# SPDX-License-Identifier: GPL-2.0-or-later
"""Debian's own QEMU in L1 reaches the vhost_blk module through vhost-blk-user (vhost-user).

No patched QEMU: L1's stock qemu-system-x86_64 (7.2) runs an L2 guest with
``vhost-user-blk-pci`` on the daemon's socket and guest RAM on a shared memfd. The guest sees the
queues and the serial the daemon was given, writes random data, reads it back; L1 checksums the
backing; fio's crc32c verify runs in the guest and again on the backing in L1. While the guest
runs, L1 samples the CPU time and context switches of the daemon and of the module's workers:
the daemon only relays set-up messages, the kernel serves the I/O.

Then the daemon is restarted while the guest is idle (the guest writes a marker, flushes and
sleeps; L1 sees the marker on the backing, stops the daemon with SIGTERM and starts a new one;
QEMU's chardev reconnects), and the guest goes on: it writes and reads back one more MiB. And once
more under I/O: while fio writes with crc32c verify, L1 restarts the daemon (SIGTERM); the module
finishes the requests in flight before QEMU sees the socket close, QEMU resumes the rings on the
new daemon, and fio verifies every block it was told was written.
"""

import json
import re
from pathlib import Path

import pytest
from vmharness import l1_vhost_user, l2, l2_fio, l2_migrate
from vmharness.l2_pattern import console_value, disk_pattern_sh
from vmharness.l2_tools import DISK_AT_SH, build_tools_disk, pci_addr

SOCK = "/run/vhost-blk/l2-vdb.sock"
BACKING = "/var/lib/vhost-blk/vu.raw"
SERIAL = "vu-l2-disk-0001"
QUEUES = 4
SLOT = 0x04
MIB = 8
MEM_MIB = 512
FIO = {"filename": "$DISK_vu", "offset": "16M", "size": "4M", "rw": "randwrite", "bs": "4k", "iodepth": 16,
       "ioengine": "libaio", "direct": 1, "verify": "crc32c", "verify_fatal": 1}
FIO_BYTES = 4 << 20
# The restart: the guest writes MARKER at MARKER_MIB, flushes and sleeps; the watcher in L1 restarts
# the daemon when it sees the marker on the backing; then the guest writes AFTER_MIB again.
MARKER = "VHOSTBLK-RESTART-NOW"
MARKER_MIB = 60
AFTER_MIB = 40
IDLE_S = 30
RESTART = f"""
echo "PHASE restart-wait $(cut -d" " -f1 /proc/uptime)"
printf '{MARKER}' | dd of=$DISK_vu bs=1M seek={MARKER_MIB} conv=notrunc,fsync 2>/dev/null
blockdev --flushbufs $DISK_vu
sleep {IDLE_S}
echo "PHASE after-restart $(cut -d" " -f1 /proc/uptime)"
dd if=/dev/urandom of=/tmp/patb bs=1M count=1 2>/dev/null
dd if=/tmp/patb of=$DISK_vu bs=1M seek={AFTER_MIB} conv=notrunc,fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
echo "AFTER-RESTART vu $(sha256sum /tmp/patb | cut -d' ' -f1) \
$(dd if=$DISK_vu bs=1M skip={AFTER_MIB} count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""
# The restart under I/O: the guest writes MARKER2 and starts fio at once; L1 restarts the daemon a
# second after it sees the marker (and notes whether fio's DONE marker is there yet).
MARKER2, MARKER2_MIB = "VHOSTBLK-RESTART-UNDER-IO", 62
DONE, DONE_MIB = "VHOSTBLK-FIO-DONE", 63
FIO2 = {**FIO, "offset": "20M", "size": "16M"}
FIO2_BYTES = 16 << 20
RESTART_IO = (f"printf '{MARKER2}' | dd of=$DISK_vu bs=1M seek={MARKER2_MIB} conv=notrunc,fsync 2>/dev/null\n"
              + l2_fio.fio_sh("under-restart", FIO2)
              + f"printf '{DONE}' | dd of=$DISK_vu bs=1M seek={DONE_MIB} conv=notrunc,fsync 2>/dev/null\n")
PAYLOAD = (DISK_AT_SH + disk_pattern_sh("vu", SLOT, MIB)
           + 'echo "PHASE fio-start $(cut -d" " -f1 /proc/uptime)"\n' + l2_fio.fio_sh("verify", FIO)
           + 'blockdev --flushbufs $DISK_vu\necho "PHASE fio-done $(cut -d" " -f1 /proc/uptime)"\n' + RESTART
           + RESTART_IO)

# Every 0.2 s: the daemon's utime+stime (ticks) and context switches, and the module's worker
# threads' utime+stime, summed (the workers end with the session). Ends with the first daemon.
SAMPLER = r"""
pid=$1; out=$2
while kill -0 $pid 2>/dev/null; do
  d=$(awk '{print $14+$15}' /proc/$pid/stat 2>/dev/null)
  c=$(awk '/^(non)?voluntary_ctxt_switches/ {s+=$2} END {print s}' /proc/$pid/status 2>/dev/null)
  w=0
  for s in /proc/[0-9]*/stat; do
    case "$(cat ${s%stat}comm 2>/dev/null)" in vhost-blk-*) w=$((w + $(awk '{print $14+$15}' $s))) ;; esac
  done
  echo "$d $c $w" >> $out
  sleep 0.2
done
"""


@pytest.fixture(scope="module")
def hv(vhostblk_hv):
    """The shared L1 with the module (tests/vm/conftest.py), and the daemon copied in; the guests
    run on Debian's QEMU."""
    l1_vhost_user.install(vhostblk_hv)
    return vhostblk_hv


def daemon_command(log, sock=SOCK, backing=BACKING, extra=""):
    return l1_vhost_user.daemon_command(log, sock, backing, f"--serial {SERIAL} --queues {QUEUES} {extra}")


WAIT_SOCKET = l1_vhost_user.wait_socket(SOCK)


def on_backing(mib, text):
    """Shell test: the backing holds ``text`` at ``mib`` MiB."""
    return f"dd if={BACKING} bs=1M skip={mib} count=1 iflag=direct 2>/dev/null | head -c {len(text)} | grep -q {text}"


# Runs in L1 beside the guest: waits for the marker on the backing, restarts the daemon; then waits
# for the second marker and restarts it again while the guest's fio runs.
WATCHER = f"""
pid=$1
until {on_backing(MARKER_MIB, MARKER)}; do sleep 0.5; done
echo "marker seen $(date +%s.%N)" > /var/tmp/restart.log
kill -TERM $pid
while kill -0 $pid 2>/dev/null; do sleep 0.1; done
echo "stopped $(date +%s.%N)" >> /var/tmp/restart.log
{daemon_command("/var/tmp/vu2.log")} > /var/tmp/vu2.pid
{WAIT_SOCKET}
echo "listening again $(date +%s.%N)" >> /var/tmp/restart.log
until {on_backing(MARKER2_MIB, MARKER2)}; do sleep 0.2; done
sleep 1
if {on_backing(DONE_MIB, DONE)}; then echo "fio had ended before the restart" >> /var/tmp/restart.log
else echo "fio running at the restart $(date +%s.%N)" >> /var/tmp/restart.log; fi
pid2=$(cat /var/tmp/vu2.pid)
kill -TERM $pid2
while kill -0 $pid2 2>/dev/null; do sleep 0.1; done
echo "stopped under I/O $(date +%s.%N)" >> /var/tmp/restart.log
{daemon_command("/var/tmp/vu3.log")} > /var/tmp/vu3.pid
{WAIT_SOCKET}
echo "listening a third time $(date +%s.%N)" >> /var/tmp/restart.log
"""


def io_phase(rows):
    """Daemon ticks and context switches from the first sample where the workers had CPU time
    (the guest's I/O is under way) to the last sample: what the daemon cost while the kernel served I/O."""
    busy = [r for r in rows if r[2] > 0]
    if not busy:
        return None
    return {"daemon_ticks": rows[-1][0] - busy[0][0], "daemon_switches": rows[-1][1] - busy[0][1],
            "worker_ticks": max(r[2] for r in rows), "daemon_total_ticks": rows[-1][0]}


@pytest.fixture(scope="module")
def guest(hv):
    tools = build_tools_disk(hv)
    hv.run(f"rm -f {BACKING} /var/tmp/restart.log && truncate -s 64M {BACKING}")
    pid = hv.run(daemon_command("/var/tmp/vu.log")).stdout.strip()
    hv.run(f"{WAIT_SOCKET}; test -S {SOCK} || {{ cat /var/tmp/vu.log; exit 1; }}")
    hv.run("cat > /var/tmp/sampler.sh", input_text=SAMPLER)
    hv.run("cat > /var/tmp/watcher.sh", input_text=WATCHER)
    hv.run(f"rm -f /var/tmp/samples; setsid sh /var/tmp/sampler.sh {pid} /var/tmp/samples </dev/null >/dev/null 2>&1 &")
    hv.run(f"setsid sh /var/tmp/watcher.sh {pid} </dev/null >/var/tmp/watcher.out 2>&1 &")
    initrd = l2.build_initramfs(hv, tools.guest_setup() + PAYLOAD, name="vhost-user")
    dev = [["-object", f"memory-backend-memfd,id=mem,size={MEM_MIB}M,share=on", "-machine", "memory-backend=mem",
            "-smp", str(QUEUES)], tools.device_args(),
           # reconnect=1: QEMU 7.2's chardev retries the socket every second (reconnect-ms in QEMU 9.2+)
           ["-chardev", f"socket,id=vu0,path={SOCK},reconnect=1",
            "-device", f"vhost-user-blk-pci,chardev=vu0,num-queues={QUEUES},addr={pci_addr(SLOT)}"]]
    result = l2.run_l2(hv, initrd, dev, timeout=1200, memory_mib=MEM_MIB)
    rows = [[int(x) for x in line.split()] for line in hv.run("cat /var/tmp/samples").stdout.splitlines()
            if len(line.split()) == 3]
    log = hv.run("cat /var/tmp/vu.log").stdout
    log2 = hv.run("cat /var/tmp/vu2.log /var/tmp/watcher.out /var/tmp/restart.log", check=False).stdout
    log3 = hv.run("cat /var/tmp/vu3.log", check=False).stdout
    phases = dict(re.findall(r"PHASE (\S+) ([0-9.]+)", result.console))
    print(f"L2 under {result.accel}; phases (guest uptime, s): {phases}\n"
          f"daemon log:\n{log}\nafter the restart:\n{log2}\nafter the restart under I/O:\n{log3}")
    assert result.rc == 0, result.console[-3000:] + "\n" + log + log2 + log3
    yield {"console": result.console, "log": log, "log2": log2, "log3": log3, "io": io_phase(rows)}
    hv.run(f"kill $(cat /var/tmp/vu3.pid) $(cat /var/tmp/vu2.pid) {pid}; sleep 1; test ! -e {SOCK}", check=False)


def test_guest_data_reaches_the_backing_byte_for_byte(hv, guest, evidence):
    console = guest["console"]
    guest_sha, back_sha = console_value(console, "GUEST-SHA", "vu"), console_value(console, "READBACK-SHA", "vu")
    on_l1 = hv.run(f"head -c {MIB}M {BACKING} | sha256sum | cut -d' ' -f1").stdout.strip()
    evidence(f"vhost-user: Debian QEMU 7.2 + vhost-blk-user, guest wrote {guest_sha}, read back {back_sha}, "
             f"L1 backing has {on_l1}")
    assert guest_sha == back_sha == on_l1


def test_guest_sees_queues_and_serial_from_the_daemon(guest):
    console = guest["console"]
    assert int(console_value(console, "QUEUES", "vu")) == QUEUES
    assert console_value(console, "SERIAL", "vu") == SERIAL


def test_fio_verify_in_guest_and_on_the_backing(hv, guest, evidence):
    runs = l2_fio.parse_runs(guest["console"])
    assert "verify" in runs, guest["console"][-3000:]
    assert not l2_fio.verify_problems(runs["verify"], FIO_BYTES)
    on_l1 = hv.run(l2_fio.fio_sh("verify", {**FIO, "filename": BACKING, "verify_only": 1}), timeout=300).stdout
    assert not l2_fio.verify_problems(l2_fio.parse_runs(on_l1)["verify"], FIO_BYTES)
    w = l2_fio.point(runs["verify"], "write")
    evidence(f"vhost-user: fio randwrite 4k qd16 {FIO_BYTES >> 20} MiB crc32c verify passed in the guest "
             f"({w['iops']:.0f} IOPS under nested TCG) and on the backing in L1")


def test_data_path_is_in_the_kernel(guest, evidence):
    """The daemon's CPU and wake-ups do not grow with the guest's I/O; the module's workers do the work."""
    io = guest["io"]
    assert io, "the module's worker threads never used CPU time: who served the I/O?"
    ios = (MIB << 20) // (1 << 20) + FIO_BYTES // 4096 * 2      # at least: 1 MiB pattern writes, fio write + verify
    hz = 100
    evidence(f"vhost-user data path: while the kernel served the guest's I/O (>= {ios} requests) the daemon used "
             f"{io['daemon_ticks']} ticks ({io['daemon_ticks'] * 1e6 / hz / ios:.2f} us per request) and woke "
             f"{io['daemon_switches']} times; the module's workers used {io['worker_ticks']} ticks; the daemon's "
             f"whole life (Python start-up, set-up messages) {io['daemon_total_ticks']} ticks")
    assert io["daemon_switches"] < ios / 10, "the daemon wakes up per request: I/O is passing through it"


def test_guest_goes_on_after_the_daemon_restarts(guest, evidence):
    wrote, read = console_value(guest["console"], "AFTER-RESTART", "vu").split()
    log2 = guest["log2"]
    assert "listening again" in log2 and "front end connected (session 1)" in log2, log2
    assert "stopped after 1 session(s)" in guest["log"], guest["log"]
    assert wrote == read, "the guest's write after the daemon restart did not read back"
    evidence(f"vhost-user restart: daemon stopped (SIGTERM) and started again while the guest was idle; QEMU "
             f"reconnected and the guest's next 1 MiB write read back identical ({wrote[:16]}...)")


def test_no_acknowledged_write_is_lost_when_the_daemon_restarts_under_io(hv, guest, evidence):
    log2, log3 = guest["log2"], guest["log3"]
    assert "fio running at the restart" in log2, f"the restart did not happen while fio ran:\n{log2}"
    assert "stopped after 1 session(s)" in log2 and "front end connected (session 1)" in log3, log2 + log3
    runs = l2_fio.parse_runs(guest["console"])
    assert "under-restart" in runs, guest["console"][-3000:]
    assert not l2_fio.verify_problems(runs["under-restart"], FIO2_BYTES)
    on_l1 = hv.run(l2_fio.fio_sh("under-restart", {**FIO2, "filename": BACKING, "verify_only": 1}),
                   timeout=300).stdout
    assert not l2_fio.verify_problems(l2_fio.parse_runs(on_l1)["under-restart"], FIO2_BYTES)
    evidence(f"vhost-user restart under I/O: the daemon was stopped (SIGTERM) and started again while fio wrote "
             f"{FIO2_BYTES >> 20} MiB (randwrite 4k qd16); QEMU reconnected, fio's crc32c verify passed in the "
             f"guest and again on the backing in L1")


def test_daemon_logs_show_clean_sessions(guest):
    for log in (guest["log"], guest["log2"], guest["log3"]):
        assert "front end connected (session 1)" in log
        assert "dropping" not in log, log


# ---- live migration between QEMUs in L1, each with its own daemon on the same backing -------------
# The backing is a file behind a loop device and a dm linear target, so that L1 can hold the guest's
# requests in flight (dmsetup suspend) across the switch-over. One guest, two attempts: first to a
# destination whose daemon has no /dev/vhost-blk (no module: it must fail and the source go on),
# then to a good one while a request is held in flight (the source must wait for it, not lose it).
MIG_BACKING = "/var/lib/vhost-blk/mig.raw"
MIG_DM = "vhostblk-mig"
MIG_DEV = f"/dev/mapper/{MIG_DM}"
MIG_CHUNKS = 40              # 256 KiB each: 10 MiB written one chunk at a time
MIG_BAD_AFTER = 4            # the attempt to the destination without the module
MIG_AFTER = 10               # the live migration
MIG_MEM_MIB = 256
MIG_HOLD_S = 3               # how long L1 holds the guest's requests once the source's drain waits for them
MIG_PAYLOAD = DISK_AT_SH + f"""
DISK=$(disk_at {SLOT:02x})
test -b "$DISK" || {{ echo "NO-DISK"; exit 1; }}
: > /tmp/sums
bad_inline=0
i=0
while [ $i -lt {MIG_CHUNKS} ]; do
  dd if=/dev/urandom of=/tmp/c bs=256k count=1 2>/dev/null
  s=$(sha256sum /tmp/c | cut -c1-64)
  dd if=/tmp/c of=$DISK bs=256k seek=$i conv=notrunc,fsync 2>/dev/null
  blockdev --flushbufs $DISK
  r=$(dd if=$DISK bs=256k skip=$i count=1 2>/dev/null | sha256sum | cut -c1-64)
  [ "$r" = "$s" ] || bad_inline=$((bad_inline + 1))
  echo "$i $s" >> /tmp/sums
  i=$((i + 1))
  echo "CHUNK $i"
done
echo 3 > /proc/sys/vm/drop_caches
bad=0
while read i s; do
  r=$(dd if=$DISK bs=256k skip=$i count=1 2>/dev/null | sha256sum | cut -c1-64)
  [ "$r" = "$s" ] || bad=$((bad + 1))
done < /tmp/sums
sed 's/^/SUM /' /tmp/sums
echo "MIGRATION-CHECK chunks={MIG_CHUNKS} bad_inline=$bad_inline bad=$bad"
"""
STOPPED = re.compile(r"vring (\d+) stopped at avail index (\d+) \((\d+) request\(s\) were in flight, "
                     r"stopped in ([0-9.]+) s\)")


def queue_stats(pid):
    """Shell: the module's per-queue counters of the device owned by ``pid``, summed over its queues."""
    return (f"cat /sys/kernel/debug/vhost-blk/{pid}-*/queue* | "
            "awk '{s[$1]+=$2} END {for (k in s) print k, s[k]}'")


def hold_in_flight(pid):
    """Shell: hold the backing's I/O (dm suspend) and wait until the source has a request in flight."""
    return (f"dmsetup suspend --nolockfs {MIG_DM}\nfor i in $(seq 300); do\n"
            f"  n=$({queue_stats(pid)} | awk '$1 == \"inflight\" {{print $2}}')\n"
            "  [ \"${n:-0}\" -gt 0 ] && break\n  sleep 0.2\ndone\necho \"in flight before the migration: $n\"")


# Waits until the source's daemon waits for the held requests at GET_VRING_BASE, holds them
# MIG_HOLD_S more seconds, then lets them finish (after 120 s at the latest, whatever happened).
RELEASE = f"""
for i in $(seq 600); do grep -q "waiting for them" /var/tmp/mig-src.log && break; sleep 0.2; done
grep -q "waiting for them" /var/tmp/mig-src.log && echo "drain seen $(date +%s.%N)" || echo "drain NOT seen"
sleep {MIG_HOLD_S}
dmsetup resume {MIG_DM} && echo "resumed $(date +%s.%N)"
"""


@pytest.fixture(scope="module")
def migrated(hv):
    """One guest writes chunks through vhost-blk-user on the source QEMU; a migration to a destination
    without the module fails; the guest is then live-migrated, with a request held in flight, to a
    destination QEMU with its own daemon on the same backing, and finishes there."""
    hv.run(f"dmsetup remove {MIG_DM} 2>/dev/null; losetup -D; rm -f {MIG_BACKING} && truncate -s 64M {MIG_BACKING}"
           f" && dev=$(losetup -f --show --direct-io=on {MIG_BACKING})"
           f" && dmsetup create {MIG_DM} --table \"0 $(blockdev --getsz $dev) linear $dev 0\"")
    src_pid = hv.run(daemon_command("/var/tmp/mig-src.log", "/run/vhost-blk/mig-src.sock", MIG_DEV)).stdout.strip()
    # the destinations attach the same backing while the source still holds it: --shared
    dst_pid = hv.run(daemon_command("/var/tmp/mig-dst.log", "/run/vhost-blk/mig-dst.sock", MIG_DEV,
                                    "--shared")).stdout.strip()
    # a host without the module: no device node
    bad_pid = hv.run(daemon_command("/var/tmp/mig-bad.log", "/run/vhost-blk/mig-bad.sock", MIG_DEV,
                                    "--shared --device /dev/vhost-blk-absent")).stdout.strip()
    hv.run("for s in mig-src mig-dst mig-bad; do for i in $(seq 100); do test -S /run/vhost-blk/$s.sock && break; "
           "sleep 0.1; done; done")
    initrd = l2.build_initramfs(hv, MIG_PAYLOAD, name="migrate")
    kernel = "/boot/vmlinuz-" + hv.run("uname -r").stdout.strip()

    def cmd(side):
        dev = [["-object", f"memory-backend-memfd,id=mem,size={MIG_MEM_MIB}M,share=on",
                "-machine", "memory-backend=mem", "-qmp", f"unix:/var/tmp/{side}.qmp,server=on,wait=off"],
               ["-chardev", f"socket,id=vu0,path=/run/vhost-blk/mig-{side}.sock",
                "-device", f"vhost-user-blk-pci,chardev=vu0,num-queues=2,addr={pci_addr(SLOT)}"]]
        if side != "src":
            dev.append(["-incoming", f"unix:/var/tmp/mig-{side}.sock"])
        argv = l2.qemu_l2_command("tcg", initrd, dev, MIG_MEM_MIB)
        # not quiet: a kernel trace in the guest is the only clue when a switch-over goes wrong
        return [kernel if a == "/boot/vmlinuz-$(uname -r)" else a.replace(" quiet", "") for a in argv]

    def to(side, after, **steps):
        return {"name": side, "after": f"CHUNK {after}\n", "dst_cmd": cmd(side),
                "dst_console": f"/var/tmp/{side}.console", "dst_qmp": f"/var/tmp/{side}.qmp",
                "migration_socket": f"/var/tmp/mig-{side}.sock", **steps}

    cfg = {"src_cmd": cmd("src"), "src_console": "/var/tmp/src.console", "src_qmp": "/var/tmp/src.qmp",
           "timeout": 900,
           "attempts": [to("bad", MIG_BAD_AFTER),
                        to("dst", MIG_AFTER, before=hold_in_flight(src_pid), during=RELEASE,
                           at_end=queue_stats(src_pid))]}
    hv.put([Path(l2_migrate.__file__)], "/var/tmp/")
    hv.run("cat > /var/tmp/migrate.json", input_text=json.dumps(cfg))
    res = hv.run("python3 /var/tmp/l2_migrate.py /var/tmp/migrate.json", timeout=1900, check=False)
    hv.run(f"dmsetup resume {MIG_DM}", check=False)      # whatever happened: no I/O left held
    consoles = {side: hv.run(f"cat /var/tmp/{side}.console", check=False).stdout for side in ("src", "bad", "dst")}
    logs = {side: hv.run(f"cat /var/tmp/mig-{side}.log", check=False).stdout for side in ("src", "bad", "dst")}
    print(f"migration driver: {res.stdout}{res.stderr}\n"
          + "".join(f"daemon log ({side}):\n{log}\n" for side, log in logs.items())
          + f"failed destination's output:\n{consoles['bad'][-1500:]}\n"
          f"destination console tail:\n{consoles['dst'][-1500:]}")
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    yield {"bad": result["attempts"][0], "good": result["attempts"][1], "guest_rc": result["guest_rc"],
           "consoles": consoles, "logs": logs}
    hv.run(f"kill {src_pid} {dst_pid} {bad_pid}; sleep 1; dmsetup remove {MIG_DM}; losetup -D", check=False)


def counters(text):
    return {k: int(v) for k, v in re.findall(r"^(\w+) (\d+)$", text, re.M)}


@pytest.mark.migration
def test_live_migration_keeps_every_write(hv, migrated, evidence):
    good, src, dst = migrated["good"], migrated["consoles"]["src"], migrated["consoles"]["dst"]
    mig = good["migration"]
    assert mig["status"] == "completed", mig
    assert good["src_status"] == "postmigrate" and good["dst_status"] == "running", good
    assert migrated["guest_rc"] == 0 and "VHOSTBLK-L2-DONE rc=0" in dst, dst[-3000:]
    before = max(int(n) for n in re.findall(r"^CHUNK (\d+)", src, re.M))
    after = [int(n) for n in re.findall(r"^CHUNK (\d+)", dst, re.M)]
    check = re.search(r"^MIGRATION-CHECK chunks=(\d+) bad_inline=(\d+) bad=(\d+)", dst, re.M)
    assert check, dst[-3000:]
    assert check.group(2) == "0" and check.group(3) == "0", check.group(0)
    assert before >= MIG_AFTER and after and min(after) <= before + 1 and max(after) == MIG_CHUNKS, (before, after)
    # the backing in L1 holds every chunk the guest wrote, before and after the switch-over
    sums = re.findall(r"^SUM (\d+) ([0-9a-f]{64})", dst, re.M)
    assert len(sums) == MIG_CHUNKS
    on_l1 = hv.run(f"for i in $(seq 0 {MIG_CHUNKS - 1}); do echo \"$i $(dd if={MIG_BACKING} bs=256k skip=$i "
                   "count=1 iflag=direct 2>/dev/null | sha256sum | cut -c1-64)\"; done").stdout.split("\n")
    wrote = [f"{i} {s}" for i, s in sums]
    assert wrote == [line for line in on_l1 if line], "the backing differs from what the guest wrote"
    # the source's module logged the guest pages it wrote while QEMU migrated (status bytes, used ring, reads)
    dirty = counters(good["at_end"]).get("dirty_pages")
    assert dirty, f"the module logged no dirty page on the source: {good['at_end']}"
    assert "dirty logging on" in migrated["logs"]["src"], migrated["logs"]["src"]
    ram = mig.get("ram", {})
    evidence(f"vhost-user live migration (two QEMU 7.2 in L1, a daemon each on one backing): guest wrote {before} "
             f"chunks of 256 KiB on the source, {MIG_CHUNKS - before} on the destination, each read back at once and "
             f"all again at the end: 0 bad; backing checked in L1; downtime {mig.get('downtime')} ms, total "
             f"{mig.get('total-time')} ms, {ram.get('transferred', 0) >> 20} MiB RAM sent, dirty-sync-count "
             f"{ram.get('dirty-sync-count')}; the module logged {dirty} dirty page(s) on the source")


@pytest.mark.migration
def test_migration_waits_for_requests_in_flight(migrated, evidence):
    """The source's backing held the guest's I/O when the migration started: at the switch-over the
    source's ring stop (GET_VRING_BASE) waited for the held requests, QEMU's downtime includes that
    wait, and the destination resumed each ring where the source stopped it."""
    good, logs = migrated["good"], migrated["logs"]
    assert re.search(r"in flight before the migration: [1-9]", good["before"]), good["before"]
    assert "drain seen" in good["during"] and "resumed" in good["during"], good["during"]
    stops = {int(r): (int(base), int(n), float(t)) for r, base, n, t in STOPPED.findall(logs["src"])}
    waited = [(r, n, t) for r, (_b, n, t) in stops.items() if n]
    assert waited and max(t for _r, _n, t in waited) >= MIG_HOLD_S - 0.5, logs["src"]
    for ring, (base, _n, _t) in stops.items():
        starts = re.findall(rf"vring {ring} starts at avail index (\d+)", logs["dst"])
        assert starts and int(starts[-1]) == base, (ring, base, logs["dst"])
    downtime = good["migration"].get("downtime", 0)
    assert downtime >= (MIG_HOLD_S - 0.5) * 1000, good["migration"]
    evidence(f"vhost-user migration with requests held in flight (dm suspend under the backing): the source's "
             f"ring stop waited for {', '.join(f'{n} request(s) for {t:.2f} s on vring {r}' for r, n, t in waited)}; "
             f"QEMU's downtime {downtime} ms; the destination resumed at the source's avail indexes "
             f"{ {r: b for r, (b, _n, _t) in stops.items()} }; every write checked (see the live migration test)")


@pytest.mark.migration
def test_migration_to_a_destination_without_the_module_fails_cleanly(migrated, evidence):
    bad, src = migrated["bad"], migrated["consoles"]["src"]
    assert "dst_exited" in bad, bad
    assert bad["migration"]["status"] in ("failed", "refused"), bad
    assert bad["src_status"] == "running", bad
    assert "is the vhost_blk module loaded?" in migrated["logs"]["bad"], migrated["logs"]["bad"]
    assert "vhost-user-blk" in migrated["consoles"]["bad"], migrated["consoles"]["bad"]
    # the guest went on writing on the source after the failed attempt (and every chunk is checked above)
    assert max(int(n) for n in re.findall(r"^CHUNK (\d+)", src, re.M)) >= MIG_AFTER
    why = bad["migration"].get("error") or bad["migration"].get("error-desc")
    evidence(f"vhost-user migration to a destination without the module: its daemon said "
             f"{re.search(r'cannot set up.*', migrated['logs']['bad']).group(0)!r}; its QEMU exited "
             f"({bad['dst_exited']}); the source's migration ended {bad['migration']['status']} ({why}); the source "
             f"kept running and its guest kept writing, every chunk intact")
