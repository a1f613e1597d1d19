# SPDX-License-Identifier: GPL-2.0-or-later
"""playbooks/benchmark.yml (molecule side effect, a tiny matrix): every cell of the report has a
value, the charts are PNG images, and nothing of the run is left on the hypervisor. The numbers
come from emulation and are never compared with anything."""

import json
import os
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner
from libvirt_guest import VIRSH
from PIL import Image

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

REPORT = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "benchmark-report"
PATHS = ["host-native", "virtio-blk", "vhost-user"]  # what side_effect.yml selects
WORKLOADS = ["4k-randread-qd1-j1", "4k-randwrite-qd8-j1"]
CPU = {"host-native": [], "virtio-blk": ["qemu"], "vhost-user": ["qemu", "daemon", "kernel_workers"]}


@pytest.fixture(name="doc")
def fixture_doc(host):
    return json.loads((REPORT / "results" / f"{host.backend.get_hostname()}.json").read_text())


def test_every_cell_has_a_value(doc):
    assert doc["host"]["emulated"] is True
    assert [load["name"] for load in doc["workloads"]] == WORKLOADS
    assert "not selected" in doc["skipped"]["vhost-blk-pci"]
    for path in PATHS:
        for load in WORKLOADS:
            cell = doc["results"][path][load]
            where = f"{path} {load}"
            assert cell["ios"] > 0 and cell["iops"] > 0, where
            # iops x 4 KiB, kept to 0.001 MiB/s: a few I/Os in a 3 s run on a loaded host round to 0.0
            assert abs(cell["bw_mib_s"] - cell["iops"] * 4 / 1024) <= 0.0005 + 0.05 * cell["bw_mib_s"], where
            assert 0 < cell["clat_us"]["p50"] <= cell["clat_us"]["p99"] <= cell["clat_us"]["p99.9"], where
            for part in CPU[path]:
                assert cell["cpu_s"][part] is not None and cell["cpu_s"][part] >= 0, f"{where} cpu {part}"
            print(f"benchmark {where}: {cell['iops']:.1f} IOPS p99 {cell['clat_us']['p99']} us")


def test_report_and_summary_name_every_cell(host):
    html = (REPORT / "report.html").read_text()
    summary = json.loads((REPORT / "summary.json").read_text())
    assert summary["missing"] == []
    assert host.backend.get_hostname() in html
    for name in PATHS + WORKLOADS:
        assert name in html, name


def test_charts_are_png_images(host):
    for kind in ("iops", "latency"):
        png = REPORT / f"{kind}-{host.backend.get_hostname()}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        with Image.open(png) as image:
            image.load()  # decodes every pixel: a truncated file fails here
            assert image.width > 200 and image.height > 100, (png, image.size)


def test_benchmark_left_nothing_behind(host):
    domains = host.check_output(f"{VIRSH} list --all --name")
    assert "vhostblk-bench" not in domains, domains
    assert not host.file("/var/lib/libvirt/images/vhostblk-benchmark").exists
    units = host.check_output("systemctl list-units --all --no-legend 'vhost-blk-user@*'")
    assert "vhostblk-bench" not in units, units
    assert host.run("pgrep -x fio").rc == 1, "a fio process is still running"
    assert not [f for f in host.check_output("ls /etc/vhost-blk/user/ 2>/dev/null || true").split()
                if f.startswith("vhostblk-bench")]
