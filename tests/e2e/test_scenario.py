"""``aiguillage demo --scenario``: the Rennes wave on the real services ends with the
waiting list drained, and leaves nothing behind when told not to stay open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import fresh_namespace

pytestmark = pytest.mark.e2e


def test_the_rennes_scenario_drains_its_waiting_list(broker_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiguillage",
            "demo",
            "--scenario",
            "rennes",
            "--speed",
            "30",
            "--days",
            "3",
            "--no-watch",
            "--console-port",
            "0",
            "--timeout",
            "120",
        ],
        env={
            **os.environ,
            "AIGUILLAGE_BROKER_URL": broker_url,
            "AIGUILLAGE_DATA_DIR": str(tmp_path / "data"),
            "AIGUILLAGE_NAMESPACE": fresh_namespace("scenario"),
            "COLUMNS": "120",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Rennes, 25 mars 2020" in out
    assert "jour" in out or "vague" in out  # the progress bars
    assert "Par département" in out
    assert "l'ARS a ouvert" in out
    assert not list((tmp_path / "data").glob("demo-*/*.db"))
