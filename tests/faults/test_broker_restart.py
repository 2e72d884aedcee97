"""RabbitMQ restarts in the middle of a burst: the services reconnect by themselves and
the burst completes with nothing lost (confirmed publishes, durable quorum queues).

This stops the broker's application (``rabbitmqctl stop_app``): run the fault suite on
its own, never beside other tests on the same broker."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from tests.faults.conftest import Cluster
from tests.faults.test_crashes import record

pytestmark = pytest.mark.faults


def rabbitmqctl(*args: str) -> None:
    """On the broker the tests use: AIGUILLAGE_TEST_RABBITMQ_NODE names its node when it
    is not the default one (a second node kept for fault tests, say)."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail(
            "rabbitmqctl is needed to restart the broker (run on the broker's host)", pytrace=False
        )
    node = os.environ.get("AIGUILLAGE_TEST_RABBITMQ_NODE")
    command = ["rabbitmqctl", *(["-n", node] if node else []), *args]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


async def test_broker_restart_mid_burst(cluster: Cluster) -> None:
    await cluster.burst(80, seed=21, pause=0.01)
    await asyncio.sleep(0.5)  # mid-flow: some referrals in every stage
    await asyncio.to_thread(rabbitmqctl, "stop_app")
    try:
        await asyncio.sleep(3)
    finally:
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await asyncio.to_thread(rabbitmqctl, "await_startup")
    # The observer's own connection is robust too; the burst goes on after the restart.
    await asyncio.sleep(5)
    await cluster.burst(40, seed=22, pause=0.01)
    await cluster.settle(timeout=240)
    states = cluster.final_states()
    assert states["none"] == 0 and sum(states.values()) == 120
    duplicates = cluster.duplicates()
    assert duplicates == {}, cluster.story(duplicates)
    assert not cluster.processes.dead(), "a service died instead of reconnecting"
    record(
        "RabbitMQ restarted mid-burst",
        {
            "referrals": 120,
            "final_states": dict(states),
            "duplicate_effects": 0,
            "lost": 0,
        },
    )
