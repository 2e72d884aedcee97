"""SIGTERM each service in turn while referrals flow, as a rolling update does, and start
it again: each hands over (stops taking deliveries, finishes and acknowledges those in
hand, flushes its outbox, exits 0), and nothing is lost, dead-lettered or done twice."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from shared.settings import ServiceName, Settings
from shared.topology import dead_letter_queue
from tests.faults.conftest import Cluster

pytestmark = pytest.mark.faults

PER_SERVICE = 8


async def dead_lettered(settings: Settings) -> dict[str, int]:
    """Each service's dead-letter queue's depth (read, not consumed)."""
    connection = await aio_pika.connect(settings.broker_url)
    depths = {}
    async with connection:
        channel = await connection.channel()
        for service in ServiceName:
            queue = await channel.declare_queue(
                dead_letter_queue(settings.namespace, service.value), passive=True
            )
            depths[service.value] = queue.declaration_result.message_count or 0
    return depths


async def test_sigterm_to_each_service_mid_flow_hands_over(cluster: Cluster) -> None:
    exits = {}
    for turn, service in enumerate(ServiceName):
        burst = asyncio.create_task(cluster.burst(PER_SERVICE, seed=turn, pause=0.05))
        await asyncio.sleep(0.4)  # referrals in flight through the pipeline
        # Blocking on purpose: the flow's publisher waits while the service hands over.
        exits[service.value] = await asyncio.to_thread(cluster.processes.terminate, service)
        log = cluster.processes.log(service)
        assert "service stopping: finishing the deliveries in hand" in log, log[-2000:]
        assert "FastStream app shut down gracefully" in log[-1000:], log[-2000:]
        await burst
        # Its successor starts while the next one is stopped, as a rollout's pods do.
        cluster.processes.start(service, wait=False)
    await asyncio.to_thread(cluster.processes.wait_listening)
    assert exits == {s.value: 0 for s in ServiceName}
    await cluster.settle(timeout=120)
    states = cluster.final_states()
    total = PER_SERVICE * len(ServiceName)
    assert states["none"] == 0 and sum(states.values()) == total, states
    duplicates = cluster.duplicates()
    assert duplicates == {}, cluster.story(duplicates)
    assert await dead_lettered(cluster.settings) == {s.value: 0 for s in ServiceName}
    # Handed over, not abandoned: no service saw again an event it had handled (a
    # delivery in hand at SIGTERM was acknowledged, not returned to its queue).
    for service in ServiceName:
        assert "duplicate event ignored" not in cluster.processes.log(service), service.value
