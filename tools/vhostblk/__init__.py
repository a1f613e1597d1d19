# SPDX-License-Identifier: GPL-2.0-or-later
"""User-space exerciser for /dev/vhost-blk: a tiny VMM (selftest, fuzz, bench)."""

__version__ = "0.1.0"
