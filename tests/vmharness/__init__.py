# SPDX-License-Identifier: GPL-2.0-or-later
"""Test-hypervisor harness: builds, boots and tears down the L1 Debian VM.

The host cannot load kernel modules, so everything that loads vhost_blk runs inside an L1 VM:
a Debian image built with mmdebstrap (cached by a hash of its recipe), booted by
qemu-system-x86_64 under TCG with ``-cpu max`` (emulated SVM, so ``kvm_amd`` works inside and
L2 guests can run), reached over SSH on 127.0.0.1.
"""


class HarnessError(RuntimeError):
    """A harness step failed; the message says which step and why."""
