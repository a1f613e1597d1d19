# SPDX-License-Identifier: GPL-2.0-or-later
"""Check mode on a converged host (issue 13 item 5): the scenario's own converge playbook, run
again with --check after converge, idempotence and the side effect, fails nowhere and would change
nothing."""

import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from check_mode import run_check_mode  # noqa: E402

CONVERGE = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"


def test_check_mode_on_the_converged_host_changes_nothing():
    run = run_check_mode(CONVERGE)
    assert run.rc == 0, f"ansible-playbook --check failed (rc {run.rc}):\n{run.output[-8000:]}"
    assert run.recap, "no host in the PLAY RECAP"
    for host, counters in run.recap.items():
        assert counters["failed"] == 0 and counters["unreachable"] == 0, f"{host}: {counters}"
        assert counters["changed"] == 0, f"{host}: check mode would change {counters['changed']} things: {counters}"
    left = re.findall(r"check mode: would (?:install|add|build|load|replace)[^\n\"]*", run.output)
    assert not left, f"a converged host has nothing left to do, check mode says: {left}"
