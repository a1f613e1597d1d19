# SPDX-License-Identifier: GPL-2.0-or-later
"""`bench`: 4k random IOPS and latency through /dev/vhost-blk next to fio (io_uring).

Each point is measured with the Python driver (VhostRun) and the C driver (cdriver.py), one after
the other on the same backing, then fio once."""

import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time

from . import cdriver
from . import virtio as V
from .abi import MAX_BUSYLOOP_US
from .backend import open_backend
from .driver import RingError, Session

BS = 4096
_HDR = V.OUTHDR


def _pow2_at_least(n):
    p = 8
    while p < n:
        p *= 2
    return p


class VhostRun:
    """Closed-loop 4k random I/O at a fixed queue depth on one virtqueue."""

    def __init__(self, open_device, fd, size, rw, qd, runtime, timeout, seed, busyloop_us=0):
        self.open_device, self.fd, self.size = open_device, fd, size
        self.busyloop_us = busyloop_us
        self.rw, self.qd, self.runtime, self.timeout = rw, qd, runtime, timeout
        self.rnd = random.Random(seed)

    def run(self):
        qd = self.qd
        qsize = min(1024, _pow2_at_least(3 * qd))
        s = Session(self.open_device, (qd * (BS + 64) + (1 << 20) + 64 * qsize) + (4 << 20),
                    1, qsize, want=V.bit(V.F_EVENT_IDX), backend=(self.fd, 0),
                    busyloop_us=self.busyloop_us)
        try:
            s.start()
            return self._loop(s)
        finally:
            s.close()

    def _loop(self, s):
        # The ring's 16-bit indices are stored and loaded whole through a "H" view (one 2-byte
        # access each): struct.pack_into writes byte by byte, and a device that reads avail->idx
        # between the two bytes (a polling worker does) sees it jump and breaks the queue.
        u16 = memoryview(s.mem.mm).cast("H")
        try:
            return self._loop_on(s, u16)
        finally:
            u16.release()

    def _loop_on(self, s, u16):
        vq, mem = s.vqs[0], s.mem
        mm = mem.mm
        is_write = self.rw == "randwrite"
        rtype = V.T_OUT if is_write else V.T_IN
        nblocks = self.size // BS
        # preallocated slots: descriptors 3i..3i+2 = header, data, status
        hdr_off, st_off = [], []
        for i in range(self.qd):
            hdr = mem.alloc(16, 16)
            data = mem.alloc(BS, BS)
            st = mem.alloc(1, 1)
            if is_write:
                mem.write(data, self.rnd.randbytes(BS))
            vq.write_desc(3 * i, hdr, 16, V.DESC_F_NEXT, 3 * i + 1)
            vq.write_desc(3 * i + 1, data, BS,
                          V.DESC_F_NEXT | (0 if is_write else V.DESC_F_WRITE), 3 * i + 2)
            vq.write_desc(3 * i + 2, st, 1, V.DESC_F_WRITE, 0)
            hdr_off.append(mem.off(hdr))
            st_off.append(mem.off(st))
        avail_off, used_off, num = vq._avail_off, vq._used_off, vq.num
        # indices into u16 (the rings are 2-byte aligned, the used ring 4096)
        avail_idx_at, used_idx_at = (avail_off + 2) // 2, (used_off + 2) // 2
        used_event_at = (avail_off + 4 + 2 * num) // 2
        avail_event_at = (used_off + 4 + 8 * num) // 2
        used_ring_at = (used_off + 4) // 2      # element k: id at +4k (low half, little-endian)
        kick, call, err = s.kick[0], s.call[0], s.err[0]
        poll = select.poll()
        poll.register(call, select.POLLIN)
        poll.register(err, select.POLLIN)
        randrange = self.rnd.randrange
        clock = time.perf_counter
        submit_t = [0.0] * self.qd
        avail_idx = last_used = 0
        done = errors = 0
        lat_sum = 0.0
        slot_of_head = {3 * i: i for i in range(self.qd)}

        def submit(i, avail_idx):
            _HDR.pack_into(mm, hdr_off[i], rtype, 0, randrange(nblocks) * 8)
            mm[st_off[i]] = 0xEE
            u16[(avail_off + 4) // 2 + avail_idx % num] = 3 * i
            submit_t[i] = clock()
            return (avail_idx + 1) & 0xFFFF

        t0 = clock()
        for i in range(self.qd):
            avail_idx = submit(i, avail_idx)
        u16[avail_idx_at] = avail_idx
        os.eventfd_write(kick, 1)
        end = t0 + self.runtime
        stopping = False
        inflight = self.qd
        timeout_ms = int(self.timeout * 1000)
        while inflight:
            u16[used_event_at] = last_used
            used_idx = u16[used_idx_at]
            if used_idx == last_used:
                ev = poll.poll(timeout_ms)
                if not ev:
                    raise TimeoutError(f"no completion within {self.timeout}s "
                                       f"({inflight} in flight)")
                for fd, _e in ev:
                    try:
                        os.eventfd_read(fd)
                    except BlockingIOError:
                        continue
                    if fd == err:
                        raise RingError([0])
                continue
            now = clock()
            if now >= end:
                stopping = True
            old_avail = avail_idx
            while last_used != used_idx:
                head = u16[used_ring_at + 4 * (last_used % num)]
                last_used = (last_used + 1) & 0xFFFF
                i = slot_of_head[head]
                lat_sum += now - submit_t[i]
                done += 1
                if mm[st_off[i]] != V.S_OK:
                    errors += 1
                if stopping:
                    inflight -= 1
                else:
                    avail_idx = submit(i, avail_idx)
            if avail_idx != old_avail:
                u16[avail_idx_at] = avail_idx
                if V.vring_need_event(u16[avail_event_at],
                                      avail_idx, old_avail):
                    os.eventfd_write(kick, 1)
        elapsed = clock() - t0
        return {"iops": done / elapsed, "lat_us": lat_sum / done * 1e6 if done else 0.0,
                "ios": done, "errors": errors, "seconds": elapsed}


def fio_run(path, size, rw, qd, runtime, buffered=False):
    cmd = ["fio", "--name=vhostblk-bench", f"--filename={path}", "--ioengine=io_uring",
           f"--direct={0 if buffered else 1}", f"--rw={rw}", f"--bs={BS}", f"--iodepth={qd}",
           "--numjobs=1",
           f"--size={size}", f"--runtime={runtime}", "--time_based", "--norandommap",
           "--randrepeat=0", "--output-format=json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=runtime + 120, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"fio failed: {p.stderr.strip()[-500:]}")
    doc = json.loads(p.stdout[p.stdout.index("{"):])
    job = doc["jobs"][0]["write" if rw == "randwrite" else "read"]
    lat = job.get("lat_ns") or job.get("clat_ns") or {}
    p99 = (job.get("clat_ns") or {}).get("percentile", {}).get("99.000000")
    direct = doc["jobs"][0].get("job options", {}).get("direct", "1")
    return {"iops": job["iops"], "lat_us": lat.get("mean", 0.0) / 1000.0,
            "p99_us": p99 / 1000.0 if p99 is not None else None,
            "ios": job.get("total_ios", 0), "direct": int(direct)}


class Bench:
    def __init__(self, args, open_device, rep, abi):
        self.args, self.open_device, self.rep, self.abi = args, open_device, rep, abi
        self.cexe = None
        self.cnote = None

    def _build_cdriver(self):
        """Compile the C driver (None and a note when it cannot run here; False: build failed)."""
        if self.args.fake:
            self.cnote = "C driver not run: it drives the module, not the in-process fake device"
            return True
        try:
            self.cexe = cdriver.build(self.abi.path)
        except cdriver.CDriverUnavailable as e:
            self.cnote = f"C driver not run: {e}"
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            self.cnote = f"C driver build failed: {e}"
            return False
        return True

    def run(self):
        args = self.args
        use_fio = not args.no_fio
        if use_fio and shutil.which("fio") is None:
            print("bench: fio not found in PATH (apt-get install fio), or use --no-fio",
                  file=sys.stderr)
            return 2
        try:
            qds = [int(x) for x in args.qd.split(",") if x.strip()]
            rws = [x.strip() for x in args.rw.split(",") if x.strip()]
            polls = [int(x) for x in args.busyloop_us.split(",") if x.strip()]
        except ValueError:
            print("bench: --qd and --busyloop-us take integers, e.g. 1,32", file=sys.stderr)
            return 2
        if not polls or any(p < 0 or p > MAX_BUSYLOOP_US for p in polls):
            print(f"bench: --busyloop-us values must be 0-{MAX_BUSYLOOP_US}", file=sys.stderr)
            return 2
        if any(rw not in ("randread", "randwrite") for rw in rws) or not qds or \
                any(q < 1 or q > 300 for q in qds):
            print("bench: --rw randread,randwrite and 1 <= qd <= 300", file=sys.stderr)
            return 2
        cbuilt = self._build_cdriver()
        tmp = None
        path = args.file
        if not path:
            fd0, path = tempfile.mkstemp(prefix="vhostblk-bench-", suffix=".img",
                                         dir="/var/tmp")
            os.close(fd0)
            tmp = path
        try:
            self._prepare(path, args.size)
            fd, size, _blk = open_backend(path, None, direct=not (args.fake or args.buffered))
            rows = []
            try:
                for rw in rws:
                    for qd in qds:
                        rows.extend(self._point(fd, size, path, rw, qd, use_fio, polls))
            finally:
                os.close(fd)
        finally:
            if tmp:
                os.unlink(tmp)
        self._print(rows)
        return 0 if cbuilt and all(r.get("ok", True) for r in rows) else 1

    def _prepare(self, path, size):
        """Make sure every block of the file is allocated (reads must hit storage)."""
        st = os.stat(path) if os.path.exists(path) else None
        if st is not None and (not os.path.isfile(path) or
                               (st.st_size >= size and st.st_blocks * 512 >= st.st_size)):
            return
        with open(path, "r+b" if st else "wb") as f:
            chunk = random.Random(0).randbytes(1 << 20)
            for off in range(0, size, len(chunk)):
                f.write(chunk[:min(len(chunk), size - off)])
            f.flush()
            os.fsync(f.fileno())

    def _drop_cache(self, fd):
        """Buffered runs start with nothing cached (written back first): reads hit storage."""
        if self.args.buffered:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def _point(self, fd, size, path, rw, qd, use_fio, polls):
        """One row per busy-loop timeout, all against the same fio run."""
        a = self.args
        rows = []
        for poll in polls:
            row = {"rw": rw, "qd": qd, "busyloop_us": poll}
            self._drop_cache(fd)
            try:
                row["vhost"] = VhostRun(self.open_device, fd, size, rw, qd, a.runtime, a.timeout,
                                        a.seed, poll).run()
            except (OSError, RingError, TimeoutError) as e:
                row["vhost"] = {"error": str(e)}
                row["ok"] = False
            if row["vhost"].get("errors"):
                row["ok"] = False
            if self.cexe:
                self._drop_cache(fd)
                try:
                    row["cdriver"] = cdriver.run(
                        self.cexe, a.device or "/dev/" + self.abi.strings.get(
                            "VHOST_BLK_DEVICE_NAME", "vhost-blk"),
                        path, rw, qd, a.runtime, a.timeout, a.seed, poll, a.buffered)
                except (RuntimeError, ValueError, subprocess.SubprocessError) as e:
                    row["cdriver"] = {"error": str(e)}
                    row["ok"] = False
            rows.append(row)
        if use_fio:
            self._drop_cache(fd)
            try:
                fio = fio_run(path, size, rw, qd, a.runtime, a.buffered)
            except (RuntimeError, subprocess.SubprocessError, ValueError, KeyError) as e:
                fio = {"error": str(e)}
            for row in rows:
                row["fio"] = fio
                if "error" in fio:
                    row["ok"] = False
        for row in rows:
            f = row.get("fio", {})
            for side, suffix in (("vhost", ""), ("cdriver", "_c")):
                v = row.get(side, {})
                if "iops" in v and "iops" in f and f["iops"]:
                    row["ratio_iops" + suffix] = v["iops"] / f["iops"]
                    row["ratio_lat" + suffix] = v["lat_us"] / f["lat_us"] if f["lat_us"] else None
        return rows

    def _print(self, rows):
        if self.args.json:
            json.dump({"command": "bench", "runtime": self.args.runtime, "block_size": BS,
                       "cdriver_note": self.cnote, "rows": rows}, sys.stdout, indent=1)
            print()
            return

        def num(v, fmt, width):
            return f"{v:{width}{fmt}}" if v is not None else f"{'-':>{width}}"

        def cell(d):
            if "error" in d:
                return f"{'error':>10} {'':>9} {'':>9}"
            if not d:
                return f"{'-':>10} {'-':>9} {'-':>9}"
            return f"{d['iops']:10.0f} {d['lat_us']:9.1f} {num(d.get('p99_us'), '.1f', 9)}"
        print(f"4k random I/O, {self.args.runtime:g}s per run; latency = mean and 99th percentile "
              f"completion latency in microseconds; driver: the exerciser's Python driver or the C "
              f"driver (cbench/vblk_bench.c) on /dev/vhost-blk; ratios = vhost-blk / fio")
        print(f"{'workload':10} {'qd':>4} {'poll us':>7} {'driver':6} | {'vhost IOPS':>10} "
              f"{'lat us':>9} {'p99 us':>9} | {'fio IOPS':>10} {'lat us':>9} {'p99 us':>9} | "
              f"{'IOPS ratio':>10} {'lat ratio':>9}")
        for r in rows:
            for side, name, suffix in (("vhost", "python", ""), ("cdriver", "C", "_c")):
                if side == "cdriver" and side not in r:
                    continue
                ratio = num(r.get("ratio_iops" + suffix), ".2f", 10)
                lr = num(r.get("ratio_lat" + suffix), ".2f", 9)
                print(f"{r['rw']:10} {r['qd']:>4} {r['busyloop_us']:>7} {name:6} | "
                      f"{cell(r.get(side, {}))} | {cell(r.get('fio', {}))} | {ratio} {lr}")
            for side in ("vhost", "cdriver", "fio"):
                if "error" in r.get(side, {}):
                    print(f"   {side} error: {r[side]['error']}")
            if r.get("vhost", {}).get("errors"):
                print(f"   vhost: {r['vhost']['errors']} requests did not return OK")
        if self.cnote:
            print(self.cnote)
