# SPDX-License-Identifier: GPL-2.0-or-later
"""guest_check_result: the console of a guest_check guest, as the role reads it."""

import json

from ansible_collections.vhostblk.fleet.plugins.filter.guest_check_result import guest_check_result

SHA = "a" * 64


def fio_json(rw, iops, p50_ns=80000, p99_ns=250000):
    side = "read" if rw.endswith("read") else "write"
    job = {"jobname": "check", side: {"iops": iops, "total_ios": iops * 10,
                                      "clat_ns": {"percentile": {"50.000000": p50_ns, "99.000000": p99_ns}}}}
    return json.dumps({"fio version": "fio-3.33", "jobs": [job]}, indent=2)


def console(rc=0, guest=SHA, readback=SHA, fio=(("vhost-blk", "randread", 2000), ("virtio-blk", "randread", 1000)),
            hotplug=()):
    lines = ["[    1.0] random kernel line", "DISK /dev/vda", "QUEUES 2", f"GUEST-SHA {guest}",
             f"READBACK-SHA {readback}", *hotplug]
    for disk, rw, iops in fio:
        lines += [f"FIO-BEGIN {disk} {rw}", "fio: a warning before the JSON", fio_json(rw, iops), "FIO-END"]
    if rc is not None:
        lines.append(f"VHOSTBLK-L2-DONE rc={rc}")
    return "\r\n".join(lines) + "\r\n"


def test_a_good_run_is_ok_with_fio_points_and_ratio():
    res = guest_check_result(console(), SHA)
    assert res["ok"] and res["problems"] == [] and res["queues"] == 2 and res["rc"] == 0
    assert res["fio"]["vhost-blk"]["randread"] == {"iops": 2000, "ios": 20000, "p50_us": 80.0, "p99_us": 250.0}
    assert res["ratios"] == {"randread": 2.0}
    assert any("ratio 2.00" in line for line in res["summary"])


def test_backing_that_differs_from_what_the_guest_wrote_fails():
    res = guest_check_result(console(), "b" * 64)
    assert not res["ok"] and "backing file on the host holds" in res["problems"][0]


def test_readback_that_differs_fails():
    res = guest_check_result(console(readback="c" * 64), SHA)
    assert not res["ok"] and "read back" in res["problems"][0]


def test_unfinished_or_failed_payload_fails():
    assert "never finished" in guest_check_result(console(rc=None), SHA)["problems"][0]
    assert "status 3" in guest_check_result(console(rc=3), SHA)["problems"][0]


def test_broken_fio_output_is_a_problem_not_a_crash():
    text = console(fio=()) + "FIO-BEGIN vhost-blk randwrite\r\nfio: engine libaio not loadable\r\nFIO-END\r\n"
    res = guest_check_result(text, SHA)
    assert not res["ok"] and res["problems"] == ["no fio result for vhost-blk randwrite"]


def test_no_fio_runs_is_fine():
    res = guest_check_result(console(fio=()), SHA)
    assert res["ok"] and res["fio"] == {} and res["ratios"] == {}


def test_cpu_per_io_over_the_vhost_blk_runs():
    # 20000 I/Os; the back end used 2 ticks (20 ms at 100 Hz), the workers 150 ticks
    res = guest_check_result(console(), SHA, "35 10 100", "37 160 100")
    assert res["ok"] and res["cpu"] == {"ios": 20000, "daemon_us_per_io": 1.0, "workers_us_per_io": 75.0}


def test_missing_cpu_sample_is_a_problem():
    res = guest_check_result(console(), SHA, "35 10 100", "")
    assert not res["ok"] and "CPU time per I/O" in res["problems"][0]


HOT = "d" * 64


def test_hotplug_checked_against_the_host():
    good = ["HOTPLUG-WAITING", f"HOTPLUG-SHA {HOT} {HOT}", "HOTPLUG-DONE", "HOTPLUG-GONE"]
    assert guest_check_result(console(hotplug=good), SHA, hotplug_sha=HOT)["ok"]
    res = guest_check_result(console(hotplug=good), SHA, hotplug_sha="e" * 64)
    assert not res["ok"] and "hot-plugged disk" in res["problems"][0]
    res = guest_check_result(console(hotplug=good[:3]), SHA, hotplug_sha=HOT)
    assert res["problems"] == ["the hot-plugged disk did not leave the guest after the unplug"]
    res = guest_check_result(console(hotplug=["HOTPLUG-WAITING", "HOTPLUG-MISSING"], rc=6), SHA, hotplug_sha=HOT)
    assert not res["ok"] and len(res["problems"]) == 2
