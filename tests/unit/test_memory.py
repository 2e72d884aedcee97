"""The allocator setting every service applies at start (shared.memory)."""

from __future__ import annotations

import platform

import pytest

from shared.memory import tune_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_glibc_accepts_the_settings() -> None:
    assert tune_allocator() is True
