# SPDX-License-Identifier: GPL-2.0-or-later
"""Run an exerciser command (selftest, fuzz, racefuzz) in this process against a fake device class
(tools/vhostblk/fakedev.py, or a subclass with a planted bug) and read its JSON report."""

import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from vhostblk import abi as abimod  # noqa: E402
from vhostblk.cli import build_parser  # noqa: E402
from vhostblk.report import Reporter  # noqa: E402

ABI = abimod.Abi(REPO / "kmod-src/include/uapi/linux/vhost_blk.h")


def run_on_fake(runner_cls, argv, fake_cls):
    """``runner_cls`` (Selftest, Fuzzer, RaceFuzzer) run with the command line ``argv`` (its first
    word the command) on devices of ``fake_cls``: (exit code, the JSON report)."""
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    rep = Reporter(argv[0], as_json=True, stream=out)
    runner_cls(args, lambda: fake_cls(ABI), rep, ABI).run()
    rc = rep.finish()
    return rc, json.loads(out.getvalue())


def failed_names(doc):
    """The names of the report's failed checks."""
    return [c["name"] for c in doc["checks"] if c["ok"] is False]
