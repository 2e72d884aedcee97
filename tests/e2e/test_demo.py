"""The README's first command: the demo ends with every referral accounted for, and
Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import fresh_namespace

pytestmark = pytest.mark.e2e


def _env(broker_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIGUILLAGE_BROKER_URL": broker_url,
        "AIGUILLAGE_DATA_DIR": str(tmp_path / "data"),
        # The demo runs in "<namespace>-<run id>": the run's leftovers check sees it.
        "AIGUILLAGE_NAMESPACE": fresh_namespace("demo"),
        "COLUMNS": "120",
    }


def test_demo_accounts_for_every_referral(broker_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiguillage", "demo", "--referrals", "60", "--timeout", "120"],
        env=_env(broker_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every referral accounted for" in result.stdout
    assert "submitted" in result.stdout and "60" in result.stdout
    assert "p50" in result.stdout
    # Its databases and queues are gone (no --keep).
    assert not list((tmp_path / "data").glob("demo-*/*.db"))


def test_demo_without_a_broker_says_how_to_start_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiguillage", "demo", "--referrals", "5"],
        env=_env("amqp://guest:guest@127.0.0.1:1/", tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("RabbitMQ ne répond pas sur 127.0.0.1:1 : ")
    assert "rabbitmq-server -detached" in line and "aiguillage demo --in-memory" in line


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found |= {int(c) for c in text}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_no_process_behind(broker_url: str, tmp_path: Path) -> None:
    # Its output to a file, not a pipe nobody reads while it runs: a full pipe would hold
    # the demo on a write, and what it said is there to read when the test fails.
    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        demo = subprocess.Popen(
            [
                *(sys.executable, "-m", "aiguillage", "demo"),
                *("--referrals", "2000", "--timeout", "300"),
            ],
            env=_env(broker_url, tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            # Ctrl-C as a terminal delivers it: a shell starts a background job, and so
            # this test when the suite itself runs in the background, with SIGINT
            # ignored, and a process inherits that (the demo then never heard it).
            preexec_fn=_default_sigint,
        )
    try:
        deadline = time.monotonic() + 60
        children: set[int] = set()
        while time.monotonic() < deadline and len(children) < 4:
            children = _children(demo.pid)
            time.sleep(0.2)
        assert len(children) == 4, "the demo did not start four services"
        time.sleep(3)  # mid-flow
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not stop on Ctrl-C; it said:\n{output.read_text()[-3000:]}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
