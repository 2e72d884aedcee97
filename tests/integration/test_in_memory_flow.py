"""The same services and scenario on FastStream's in-memory broker (``demo --in-memory``)."""

from __future__ import annotations

from pathlib import Path

from aiguillage.demo import run_demo
from shared.settings import Settings


def test_in_memory_demo_accounts_for_every_referral(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, namespace="memory")
    assert run_demo(settings, referrals=40, seed=7, timeout=60, keep=False, in_memory=True) == 0
