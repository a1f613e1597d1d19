# SPDX-License-Identifier: GPL-2.0-or-later
"""``./dev bench guest`` without a VM: run plan, QEMU arguments, the table and its BEHIND and transport marks."""

import pytest
from devtools import bench_guest
from vmharness.l2_tools import ToolsDisk

TOOLS = ToolsDisk(path="/x/tools.tar", interp="/lib64/ld-linux-x86-64.so.2", tools=("fio",), size=1)


def _run(iops, clat_us, direction):
    side = {"iops": iops, "total_ios": int(iops * 10), "io_bytes": 0, "clat_ns": {"mean": clat_us * 1000}}
    other = {"iops": 0, "total_ios": 0, "io_bytes": 0, "clat_ns": {"mean": 0}}
    job = {"read": side if direction == "read" else other, "write": side if direction == "write" else other}
    return {"rc": 0, "json": {"jobs": [job]}, "stderr": []}


def test_plan_runs_every_disk_per_point_rotating_first():
    order = bench_guest.plan()
    n = len(bench_guest.DISKS)
    assert n == 3 and len(order) == n * len(bench_guest.POINTS)
    firsts = [order[i][0] for i in range(0, len(order), n)]
    assert firsts == ["vhost-blk", "vhost-user", "virtio-blk", "vhost-blk"]
    for i in range(0, len(order), n):
        assert {o[0] for o in order[i:i + n]} == set(bench_guest.DISKS)
        assert len({o[1:] for o in order[i:i + n]}) == 1


def test_device_args_compare_like_with_like():
    args = bench_guest.parse_args([])
    flat = " ".join(" ".join(a) for a in bench_guest.device_args(TOOLS, args))
    assert "iothread,id=iot0" in flat and "iothread=iot0" in flat
    assert "cache.direct=on,aio=io_uring" in flat and "cache-direct=on" in flat
    assert flat.count("num-queues=1,queue-size=128") == 3
    assert "addr=0x04" in flat and "addr=0x05" in flat and "addr=0x06" in flat and "addr=0x07" in flat
    # vhost-user needs guest RAM the daemon can map
    assert f"memory-backend-memfd,id=mem,size={bench_guest.MEMORY_MIB}M,share=on" in flat
    assert f"socket,id=vu0,path={bench_guest.SOCKET}" in flat and "vhost-user-blk-pci,chardev=vu0" in flat
    native = bench_guest.parse_args(["--aio", "native"])
    assert "aio=native" in " ".join(" ".join(a) for a in bench_guest.device_args(TOOLS, native))


def test_payload_runs_every_point_on_both_disks():
    text = bench_guest.payload(TOOLS, bench_guest.parse_args(["--runtime", "3"]))
    for disk, rw, qd in bench_guest.plan():
        assert f"--name={bench_guest.label(disk, rw, qd)} " in text
    for var in ("VHOST_BLK", "VHOST_USER", "VIRTIO_BLK"):
        assert f'"--filename=${var}"' in text
    assert text.count('"--runtime=3"') == 12 and text.count('"--direct=1"') == 12


def test_collect_ratios_and_behind():
    runs = {}
    for rw, qd in bench_guest.POINTS:
        d = "read" if rw == "randread" else "write"
        # vhost-blk ahead on reads, behind on writes at qd32
        v_iops = 2000.0 if (rw, qd) != ("randwrite", 32) else 500.0
        runs[bench_guest.label("vhost-blk", rw, qd)] = _run(v_iops, 1e6 / v_iops * qd, d)
        # vhost-user 3% behind vhost-blk-pci, except 10% at randread qd32
        u_iops = v_iops * (0.90 if (rw, qd) == ("randread", 32) else 0.97)
        runs[bench_guest.label("vhost-user", rw, qd)] = _run(u_iops, 1e6 / u_iops * qd, d)
        runs[bench_guest.label("virtio-blk", rw, qd)] = _run(1000.0, 1e6 / 1000.0 * qd, d)
    rows = bench_guest.collect(runs)
    assert [r["behind"] for r in rows] == [False, False, False, True]
    assert rows[0]["iops_ratio"] == 2.0 and rows[0]["clat_ratio"] == 0.5
    assert [r["user_within"] for r in rows] == [True, False, True, True]
    table = bench_guest.format_table(rows, "hdr")
    lines = table.splitlines()
    assert lines[0] == "hdr"
    assert lines[-3].startswith("randwrite qd32") and lines[-3].endswith("BEHIND")
    assert lines[-4].endswith("ahead")
    assert lines[-2] == "vhost-blk is BEHIND virtio-blk at: randwrite qd32"
    assert lines[-1] == "vhost-user is more than 5% behind vhost-blk-pci at: randread qd32"


def test_slower_latency_alone_counts_as_behind():
    runs = {}
    for rw, qd in bench_guest.POINTS:
        d = "read" if rw == "randread" else "write"
        runs[bench_guest.label("vhost-blk", rw, qd)] = _run(1000.0, 1100.0, d)
        runs[bench_guest.label("vhost-user", rw, qd)] = _run(1000.0, 1100.0, d)
        runs[bench_guest.label("virtio-blk", rw, qd)] = _run(1000.0, 1000.0, d)
    assert all(r["behind"] for r in bench_guest.collect(runs))


def test_busyloop_option_is_bounded():
    assert bench_guest.parse_args([]).busyloop_us == 0
    assert bench_guest.parse_args(["--busyloop-us", "50"]).busyloop_us == 50
    for bad in ("-1", "10001", "x"):
        with pytest.raises(SystemExit):
            bench_guest.parse_args(["--busyloop-us", bad])
