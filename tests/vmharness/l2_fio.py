# SPDX-License-Identifier: GPL-2.0-or-later
"""fio in L2 guests: the shell that runs one job and prints its JSON on the console, and the parser.

A payload runs fio with ``--output-format=json`` into a file and prints it between two marker
lines (with fio's stderr after it), so the host can pick each run out of the serial console.
"""

import json
import re

BEGIN = "FIO-JSON-BEGIN"
END = "FIO-JSON-END"
ERR = "FIO-STDERR"


def fio_sh(label: str, options: dict) -> str:
    """Shell for one fio job named ``label``; prints the JSON block and fio's exit status."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", label):
        raise ValueError(f"fio label must be a plain word, not {label!r}")
    args = " ".join(_arg(k, v) for k, v in options.items())
    out, err = f"/tmp/fio-{label}.json", f"/tmp/fio-{label}.err"
    # --eta=never: no status line every second on the (slow, emulated) serial console
    return (f"fio --name={label} {args} --eta=never --output-format=json --output={out} 2>{err}; rc=$?\n"
            f'echo "{BEGIN} {label} rc=$rc"; cat {out}; echo; echo "{END} {label}"\n'
            f'sed "s/^/{ERR} {label}: /" {err}\n')


def _arg(key: str, value) -> str:
    """One fio option, double-quoted so that a payload variable such as $DISK expands."""
    text = f"--{key}" if value is None else f"--{key}={value}"
    if re.search(r'["`\\]', text):
        raise ValueError(f"fio option {text!r} may not hold quotes or backslashes")
    return f'"{text}"'


def parse_runs(console: str) -> dict:
    """{label: {"rc": int, "json": dict or None, "stderr": [lines]}} for every fio block on the console."""
    runs, cur, buf = {}, None, []
    for raw in console.replace("\r", "").splitlines():
        line = raw.strip("\x00")
        m = re.match(rf"^{BEGIN} (\S+) rc=(-?\d+)", line)
        if m:
            cur, buf = m.group(1), []
            runs[cur] = {"rc": int(m.group(2)), "json": None, "stderr": []}
            continue
        if cur and line.startswith(f"{END} {cur}"):
            runs[cur]["json"] = _loads("\n".join(buf))
            cur = None
            continue
        m = re.match(rf"^{ERR} (\S+): (.*)$", line)
        if m and m.group(1) in runs:
            runs[m.group(1)]["stderr"].append(m.group(2))
            continue
        if cur:
            buf.append(line)
    return runs


def _loads(text: str):
    start = text.find("{")
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        return None


def job(run: dict) -> dict:
    """The single job of a parsed run; raises ValueError when fio printed no usable JSON."""
    data = run.get("json")
    if not data or len(data.get("jobs", [])) != 1:
        raise ValueError(f"fio printed no JSON with one job (rc={run.get('rc')}, stderr={run.get('stderr')})")
    return data["jobs"][0]


def point(run: dict, direction: str) -> dict:
    """IOPS and mean completion latency (microseconds) of one direction ("read"/"write")."""
    side = job(run)[direction]
    return {"iops": float(side["iops"]), "clat_us": float(side["clat_ns"]["mean"]) / 1000.0,
            "ios": int(side["total_ios"])}


def verify_problems(run: dict, size: int) -> list:
    """Why a write+verify run did not prove its data (empty: fio wrote ``size`` bytes, read them
    all back in the verify phase, and reported no error)."""
    problems = []
    if run.get("rc") != 0:
        problems.append(f"fio exit status {run.get('rc')}")
    try:
        j = job(run)
    except ValueError as exc:
        return problems + [str(exc)]
    if j.get("error"):
        problems.append(f"job error {j['error']}")
    if int(j["write"]["io_bytes"]) != size:
        problems.append(f"wrote {j['write']['io_bytes']} bytes, expected {size}")
    if int(j["read"]["io_bytes"]) != size:
        problems.append(f"verify read {j['read']['io_bytes']} bytes, expected {size}")
    bad = [ln for ln in run.get("stderr", []) if "verify" in ln.lower() or "bad" in ln.lower()]
    if bad:
        problems.append("fio: " + "; ".join(bad[:5]))
    return problems
