# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""The result of vhostblk.fleet.guest_check, read from the throwaway guest's console."""

import json
import re

DOCUMENTATION = r"""
name: guest_check_result
short_description: Result of a vhostblk.fleet.guest_check guest, from its console
description:
  - Reads the console of the guest that the role C(vhostblk.fleet.guest_check) boots, checks that
    the guest's payload finished, that its written and read-back checksums agree with each other and
    with the checksum of the backing file taken on the host, and collects the fio runs (IOPS and
    completion latency percentiles) of the vhost-blk disk and of the virtio-blk peer.
options:
  _input:
    description: The guest's console output.
    type: str
    required: true
  backing_sha:
    description: SHA-256 of the first pattern bytes of the vhost-blk disk's backing file, read on the host.
    type: str
    required: true
  cpu_begin:
    description:
      - C(DAEMON_TICKS WORKER_TICKS CLK_TCK) of the vhost-user back end and its kernel workers when the
        guest started its vhost-blk fio runs (the role's C(backend_cpu.sh)); with O(cpu_end), the CPU
        time per I/O of each.
    type: str
  cpu_end:
    description: The same, when those runs had ended.
    type: str
  hotplug_sha:
    description: SHA-256 of the first MiB of the hot-plugged disk's backing file, read on the host.
    type: str
"""

EXAMPLES = r"""
- name: Collect the result
  ansible.builtin.set_fact:
    result: "{{ console | vhostblk.fleet.guest_check_result(backing_sha) }}"
"""

RETURN = r"""
_value:
  description: The result.
  type: dict
  contains:
    ok:
      description: The payload finished with status 0 and all three checksums agree.
      type: bool
    problems:
      description: What went wrong, one sentence each.
      type: list
      elements: str
    rc:
      description: Exit status of the guest's payload, or null when it never finished.
      type: int
    queues:
      description: Virtqueues the guest's vhost-blk disk has.
      type: int
    guest_sha:
      description: Checksum of the data the guest wrote.
      type: str
    readback_sha:
      description: Checksum of what the guest read back after dropping its caches.
      type: str
    backing_sha:
      description: Checksum of the backing file on the host.
      type: str
    fio:
      description: >-
        Per disk (C(vhost-blk), C(virtio-blk)) and workload (C(randread), C(randwrite)): C(iops),
        C(p50_us), C(p99_us).
      type: dict
    ratios:
      description: Per workload, vhost-blk IOPS divided by virtio-blk IOPS.
      type: dict
    cpu:
      description: >-
        With O(cpu_begin) and O(cpu_end): C(ios) (the vhost-blk fio runs' I/Os), C(daemon_us_per_io)
        and C(workers_us_per_io) (CPU time of the back end and of the module's workers over those runs).
      type: dict
    hotplug:
      description: C(wrote), C(read) (guest) and C(backing) (host) checksums of the hot-plugged disk.
      type: dict
    summary:
      description: Lines for a person to read.
      type: list
      elements: str
    console_tail:
      description: The last lines of the console.
      type: str
"""

DONE = re.compile(r"^VHOSTBLK-L2-DONE rc=(\d+)", re.M)
FIO_BLOCK = re.compile(r"^FIO-BEGIN (\S+) (\S+)\s*$(.*?)^FIO-END\s*$", re.M | re.S)


def _value(console, key):
    m = re.search(rf"^{re.escape(key)} (\S+)", console, re.M)
    return m.group(1) if m else None


def _value_line(console, key):
    m = re.search(rf"^{re.escape(key)} (.+?)\s*$", console, re.M)
    return m.group(1) if m else None


def _fio_point(text, rw):
    """IOPS and completion latency percentiles (µs) of the one job in fio's JSON output."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        job_all = json.loads(text[start:end + 1])["jobs"][0]
        job = job_all["read" if rw.endswith("read") else "write"]
    except (ValueError, KeyError, IndexError):
        return None
    pct = job.get("clat_ns", {}).get("percentile", {})
    ios = sum(int(one.get("total_ios", 0)) for one in (job_all.get("read", {}), job_all.get("write", {})))
    return {"iops": round(job["iops"], 1), "ios": ios,
            "p50_us": round(pct.get("50.000000", 0) / 1000, 1),
            "p99_us": round(pct.get("99.000000", 0) / 1000, 1)}


def _cpu(begin, end, ios):
    """CPU time per I/O of the back end and of the kernel workers between two backend_cpu.sh samples."""
    try:
        d0, w0, hz = (int(x) for x in begin.split())
        d1, w1, _hz = (int(x) for x in end.split())
    except (AttributeError, ValueError):
        return None
    if not ios:
        return None
    return {"ios": ios, "daemon_us_per_io": round((d1 - d0) * 1e6 / hz / ios, 3),
            "workers_us_per_io": round((w1 - w0) * 1e6 / hz / ios, 3)}


def guest_check_result(console, backing_sha, cpu_begin=None, cpu_end=None, hotplug_sha=None):
    console = (console or "").replace("\r", "")
    done = DONE.search(console)
    res = {"rc": int(done.group(1)) if done else None,
           "queues": int(_value(console, "QUEUES") or 0),
           "guest_sha": _value(console, "GUEST-SHA"), "readback_sha": _value(console, "READBACK-SHA"),
           "backing_sha": backing_sha, "fio": {}, "ratios": {},
           "console_tail": "\n".join(console.splitlines()[-40:])}
    problems = []
    if res["rc"] is None:
        problems.append("the guest's payload never finished (no VHOSTBLK-L2-DONE on the console)")
    elif res["rc"] != 0:
        problems.append(f"the guest's payload failed with status {res['rc']}")
    if not res["guest_sha"] or res["guest_sha"] != res["readback_sha"]:
        problems.append(f"the guest read back {res['readback_sha']}, it wrote {res['guest_sha']}")
    elif res["guest_sha"] != backing_sha:
        problems.append(f"the backing file on the host holds {backing_sha}, the guest wrote {res['guest_sha']}")
    for disk, rw, text in FIO_BLOCK.findall(console):
        point = _fio_point(text, rw)
        if point is None:
            problems.append(f"no fio result for {disk} {rw}")
            continue
        res["fio"].setdefault(disk, {})[rw] = point
    summary = [f"guest wrote {res['guest_sha']}, read back {res['readback_sha']}, backing holds {backing_sha}",
               f"vhost-blk disk with {res['queues']} queue(s)"]
    peer = res["fio"].get("virtio-blk", {})
    for rw, point in sorted(res["fio"].get("vhost-blk", {}).items()):
        line = f"fio 4k {rw} qd16: vhost-blk {point['iops']:.0f} IOPS (p99 {point['p99_us']:.0f} us)"
        if rw in peer and peer[rw]["iops"]:
            res["ratios"][rw] = round(point["iops"] / peer[rw]["iops"], 2)
            line += (f", virtio-blk {peer[rw]['iops']:.0f} IOPS (p99 {peer[rw]['p99_us']:.0f} us),"
                     f" ratio {res['ratios'][rw]:.2f}")
        summary.append(line)
    vhost = res["fio"].get("vhost-blk", {})
    if cpu_begin is not None:
        res["cpu"] = _cpu(cpu_begin, cpu_end, sum(p["ios"] for p in vhost.values()))
        if res["cpu"] is None:
            problems.append(f"no CPU time per I/O from samples {cpu_begin!r} and {cpu_end!r}")
        else:
            summary.append(f"over {res['cpu']['ios']} vhost-blk I/Os the back end used "
                           f"{res['cpu']['daemon_us_per_io']} us of CPU per I/O, the kernel workers "
                           f"{res['cpu']['workers_us_per_io']} us")
    if hotplug_sha is not None:
        wrote, _sep, read = (_value_line(console, "HOTPLUG-SHA") or "").partition(" ")
        res["hotplug"] = {"wrote": wrote or None, "read": read or None, "backing": hotplug_sha}
        if not wrote or not wrote == read == hotplug_sha:
            problems.append(f"hot-plugged disk: guest wrote {wrote or None}, read {read or None}, "
                            f"backing holds {hotplug_sha}")
        elif "HOTPLUG-GONE" not in console:
            problems.append("the hot-plugged disk did not leave the guest after the unplug")
        else:
            summary.append("a second vhost-blk disk was hot-plugged, written, read back and unplugged")
    res.update(ok=not problems, problems=problems, summary=summary)
    return res


class FilterModule:
    def filters(self):
        return {"guest_check_result": guest_check_result}
