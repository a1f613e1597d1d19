# SPDX-License-Identifier: GPL-2.0-or-later
"""The debug kernel cache (tests/devtools/debug_kernel.py): what makes a new build."""

import pytest
from devtools import debug_kernel


def test_key_changes_with_debian_version_and_config_fragment(tmp_path, monkeypatch):
    frag = tmp_path / "frag.config"
    frag.write_text("CONFIG_KASAN=y\n")
    monkeypatch.setattr(debug_kernel, "FRAGMENT", frag)
    first = debug_kernel.key("6.12.117-1~deb12u1")
    assert first.startswith("6.12.117-1~deb12u1-") and first == debug_kernel.key("6.12.117-1~deb12u1")
    assert debug_kernel.key("6.12.118-1~deb12u1") != first
    frag.write_text("CONFIG_KASAN=y\nCONFIG_PROVE_LOCKING=y\n")
    assert debug_kernel.key("6.12.117-1~deb12u1") != first


def test_fragment_turns_on_the_checkers():
    lines = set(debug_kernel.FRAGMENT.read_text().splitlines())
    for option in ("KASAN", "KASAN_GENERIC", "KASAN_INLINE", "PROVE_LOCKING", "DEBUG_KMEMLEAK",
                   "DEBUG_ATOMIC_SLEEP", "BLK_DEV_LOOP", "BLK_DEV_DM", "EXT4_FS", "DEBUG_FS", "EVENTFD"):
        assert f"CONFIG_{option}=y" in lines, option


def test_missing_candidate_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(debug_kernel, "PACKAGE", "linux-source-0.0-no-such-series")
    with pytest.raises(RuntimeError, match=r"linux-source-0\.0-no-such-series .*apt-get update"):
        debug_kernel.debian_version()
