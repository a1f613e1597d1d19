# SPDX-License-Identifier: GPL-2.0-or-later
"""Booting the converged hypervisor's libvirt test guests (shared by the verify modules)."""

import re

VIRSH = "virsh -c qemu:///system"


def console_value(console, key):
    m = re.search(rf"^{key} (\S+)", console, re.M)
    return m.group(1) if m else None


def run_guest(host, name, console_path):
    """Start ``name`` through libvirt and wait until it powers itself off; return its console.
    TCG inside TCG: a guest takes one to three minutes."""
    host.run(f"{VIRSH} destroy {name}")
    host.run(f"rm -f {console_path}")
    started = host.run(f"{VIRSH} start {name}")
    qemu_log = host.run(f"tail -n 30 /var/log/libvirt/qemu/{name}.log").stdout
    assert started.rc == 0, f"virsh start failed: {started.stderr}\n{qemu_log}"
    waited = host.run(f"timeout 900 sh -c 'while {VIRSH} domstate {name} | grep -q running; do sleep 3; done'")
    console = host.file(console_path).content_string
    assert waited.rc == 0, f"{name} still running after 15 min; console:\n{console[-3000:]}"
    assert "VHOSTBLK-L2-DONE rc=0" in console, console[-3000:]
    return console
