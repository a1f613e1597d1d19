# SPDX-License-Identifier: GPL-2.0-or-later
"""Debian's own QEMU in L1 reaches the vhost_blk module through vhost-blk-user (vhost-user).

No patched QEMU: L1's stock qemu-system-x86_64 (7.2) runs an L2 guest with
``vhost-user-blk-pci`` on the daemon's socket and guest RAM on a shared memfd. The guest sees the
queues and the serial the daemon was given, writes random data, reads it back; L1 checksums the
backing; fio's crc32c verify runs in the guest and again on the backing in L1. While the guest
runs, L1 samples the CPU time and context switches of the daemon and of the module's workers:
the daemon only relays set-up messages, the kernel serves the I/O.
"""

import os
import re

import pytest
from vmharness import l2, l2_fio
from vmharness.l1_vhostblk import vhostblk_l1
from vmharness.l2_pattern import console_value, disk_pattern_sh
from vmharness.l2_tools import DISK_AT_SH, build_tools_disk, pci_addr
from vmharness.paths import REPO_ROOT

TOOLS = "/usr/local/lib/vhostblk-fleet"
SOCK = "/run/vhost-blk/l2-vdb.sock"
BACKING = "/var/lib/vhost-blk/vu.raw"
SERIAL = "vu-l2-disk-0001"
QUEUES = 4
SLOT = 0x04
MIB = 8
MEM_MIB = 512
FIO = {"filename": "$DISK_vu", "offset": "16M", "size": "8M", "rw": "randwrite", "bs": "4k", "iodepth": 16,
       "ioengine": "libaio", "direct": 1, "verify": "crc32c", "verify_fatal": 1}
FIO_BYTES = 8 << 20
PAYLOAD = (DISK_AT_SH + disk_pattern_sh("vu", SLOT, MIB)
           + 'echo "PHASE fio-start $(cut -d" " -f1 /proc/uptime)"\n' + l2_fio.fio_sh("verify", FIO)
           + 'blockdev --flushbufs $DISK_vu\necho "PHASE fio-done $(cut -d" " -f1 /proc/uptime)"\n')

# Every 0.2 s: the daemon's utime+stime (ticks) and context switches, and the module's worker
# threads' utime+stime, summed (the workers end with the guest: the test takes each column's maximum).
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
def hv(tmp_path_factory):
    with vhostblk_l1(f"pytest-vhost-user-{os.getpid()}", tmp_path_factory.mktemp("repo"), with_qemu=False,
                     log=lambda m: print(m, flush=True)) as inst:
        inst.run(f"mkdir -p {TOOLS} /run/vhost-blk /var/lib/vhost-blk")
        inst.put([REPO_ROOT / "tools" / "vhostblk"], TOOLS + "/")
        inst.put([REPO_ROOT / "kmod-src" / "include" / "uapi" / "linux" / "vhost_blk.h"], TOOLS + "/")
        yield inst


def start_daemon(hv, *extra):
    hv.run(f"rm -f {BACKING} && truncate -s 64M {BACKING}")
    # the background job is the daemon alone (with its own stdio), so the ssh session can end
    pid = hv.run(f"cd {TOOLS}; VHOST_BLK_UAPI_HEADER={TOOLS}/vhost_blk.h setsid python3 -m vhostblk.vu_daemon "
                 f"--socket {SOCK} --backing {BACKING} --serial {SERIAL} --queues {QUEUES} {' '.join(extra)} "
                 f"</dev/null >/var/tmp/vu.log 2>&1 & echo $!").stdout.strip()
    hv.run(f"for i in $(seq 100); do test -S {SOCK} && exit 0; sleep 0.1; done; cat /var/tmp/vu.log; exit 1")
    return pid


@pytest.fixture(scope="module")
def guest(hv):
    tools = build_tools_disk(hv)
    pid = start_daemon(hv)
    hv.run("cat > /var/tmp/sampler.sh", input_text=SAMPLER)
    hv.run(f"rm -f /var/tmp/samples; setsid sh /var/tmp/sampler.sh {pid} /var/tmp/samples </dev/null >/dev/null 2>&1 &")
    initrd = l2.build_initramfs(hv, tools.guest_setup() + PAYLOAD, name="vhost-user")
    dev = [["-object", f"memory-backend-memfd,id=mem,size={MEM_MIB}M,share=on", "-machine", "memory-backend=mem",
            "-smp", str(QUEUES)], tools.device_args(),
           ["-chardev", f"socket,id=vu0,path={SOCK}",
            "-device", f"vhost-user-blk-pci,chardev=vu0,num-queues={QUEUES},addr={pci_addr(SLOT)}"]]
    result = l2.run_l2(hv, initrd, dev, timeout=1200, memory_mib=MEM_MIB)
    rows = [[int(x) for x in line.split()] for line in hv.run("cat /var/tmp/samples").stdout.splitlines()
            if len(line.split()) == 3]
    log = hv.run("cat /var/tmp/vu.log").stdout
    phases = dict(re.findall(r"PHASE (\S+) ([0-9.]+)", result.console))
    print(f"L2 under {result.accel}; phases (guest uptime, s): {phases}\ndaemon log:\n{log}")
    assert result.rc == 0, result.console[-3000:] + "\n" + log
    yield {"console": result.console, "pid": pid, "log": log, "samples": [max(col) for col in zip(*rows)]}
    hv.run(f"kill {pid}; sleep 1; test ! -e {SOCK}", check=False)


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
    daemon_ticks, daemon_switches, worker_ticks = guest["samples"]
    ios = (MIB << 20) // 4096 + FIO_BYTES // 4096 * 2      # lower bound: pattern (>=4k each), fio write + verify
    hz = 100
    evidence(f"vhost-user data path: daemon {daemon_ticks * 1e6 / hz / ios:.1f} us CPU per I/O over the whole run "
             f"including start-up ({daemon_ticks} ticks, {daemon_switches} context switches for >= {ios} I/Os); "
             f"kernel workers {worker_ticks} ticks")
    assert daemon_switches < ios / 4, "the daemon wakes up per request: I/O is passing through it"
    assert worker_ticks > 0, "the module's workers used no CPU: who served the I/O?"


def test_daemon_log_shows_one_clean_session(guest):
    log = guest["log"]
    assert "front end connected (session 1)" in log
    assert "dropping" not in log, log
