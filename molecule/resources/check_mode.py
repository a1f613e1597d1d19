# SPDX-License-Identifier: GPL-2.0-or-later
"""Run a playbook in check mode against the molecule scenario's own inventory (from a verify test)
and read the PLAY RECAP, so a test can assert what check mode would change and that it failed nowhere."""

import os
import re
import subprocess
from dataclasses import dataclass

RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", re.M)


@dataclass
class CheckRun:
    rc: int
    output: str
    recap: dict  # host -> {"ok": n, "changed": n, "failed": n, ...}


def parse_recap(output):
    """The counters of each host in the last PLAY RECAP of an ansible-playbook output."""
    assert "PLAY RECAP" in output, f"no PLAY RECAP in the output:\n{output[-4000:]}"
    tail = output.rpartition("PLAY RECAP")[2]
    return {host: {k: int(v) for k, v in (kv.split("=") for kv in counters.split())}
            for host, counters in RECAP_LINE.findall(tail)}


def run_check_mode(playbook, *args):
    """ansible-playbook --check PLAYBOOK with molecule's inventory (its group_vars included) and
    molecule's ansible.cfg and collection path, which the verifier's environment carries."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    res = subprocess.run(["ansible-playbook", "--check", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                          str(playbook), *args], env=env, capture_output=True, text=True, timeout=40 * 60,
                         check=False)
    output = res.stdout + res.stderr
    print(output[-20000:])
    return CheckRun(res.returncode, output, parse_recap(output))
