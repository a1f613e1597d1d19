# SPDX-License-Identifier: GPL-2.0-or-later
"""Make tests/ importable (vmharness, devtools) however pytest is started."""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
