"""A three-node RabbitMQ cluster, two replicas of every service, a node lost mid-burst.

The cluster is this machine's own (tests/faults/rabbit_cluster.py: three nodes on ports
5681-5683, started for this module and removed after it); the local single node is not
touched. Every process is given every node's address (AIGUILLAGE_BROKER_URLS)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiguillage.processes import ServiceProcesses
from shared import broker_nodes
from shared.events import Envelope
from shared.publisher import EventPublisher
from shared.settings import Environment, ServiceName, Settings
from tests.faults.conftest import Cluster
from tests.faults.rabbit_cluster import RabbitCluster
from tests.faults.test_crashes import record
from tests.helpers import fresh_namespace

# 1,000 referrals through eight processes and three broker nodes on two cores: about a
# minute each, the cluster's start included about 3 minutes (part of `make test`; alone,
# `make test-cluster`); the timeout leaves room for a loaded machine.
pytestmark = [pytest.mark.faults, pytest.mark.cluster, pytest.mark.timeout(900)]

REFERRALS = 1000


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitCluster]:
    existing = os.environ.get("AIGUILLAGE_TEST_RABBIT_CLUSTER")
    if existing:
        # While working on these tests: a cluster already running (started by
        # rabbit_cluster.py's RabbitCluster in that folder), left running.
        yield RabbitCluster(Path(existing))
        return
    running = RabbitCluster(Path(tempfile.mkdtemp(prefix="aig-rabbit-")))
    try:
        running.start()
        yield running
    finally:
        running.stop()


class ReplicatedCluster(Cluster):
    """The fault suite's cluster with two processes of every service, on the broker
    cluster: both replicas share the service's database."""

    def __init__(self, settings: Settings, urls: dict[str, str], logs: Path) -> None:
        super().__init__(settings, urls, logs)
        nodes = ",".join(settings.broker_nodes)
        self.processes.env["AIGUILLAGE_BROKER_URLS"] = nodes
        # The replicas' own HTTP ports (ServiceProcesses picks free ones).
        ports = {f"AIGUILLAGE_{s.value.upper()}_HTTP_PORT" for s in ServiceName}
        env = {k: v for k, v in self.processes.env.items() if k not in ports}
        self.replicas = ServiceProcesses(env, logs / "replica")
        self.replicas.env["AIGUILLAGE_BROKER_URLS"] = nodes
        self.observer.url = settings.broker_nodes
        self.activity: list[tuple[float, int]] = []
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.replicas.start()
        await super().start()
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        # What the outside sees: events reaching the observer, sampled every 100 ms.
        while True:
            self.activity.append((time.monotonic(), sum(self.observer.counts.values())))
            await asyncio.sleep(0.1)

    def stall(self, since: float) -> float:
        """The longest time after ``since`` during which no event came out while
        referrals were still under way (seconds)."""
        longest, last_change, last_count = 0.0, since, None
        for at, count in self.activity:
            if at < since:
                last_count = count
                continue
            if count != last_count:
                longest = max(longest, at - last_change)
                last_change, last_count = at, count
        return round(longest, 1)

    def broker(self) -> list[str]:
        return list(self.settings.broker_nodes)

    async def send(self, gp: EventPublisher, envelope: Envelope) -> None:
        """As Centre 15's software does, the same envelope again when the broker did not
        confirm it (intake has it once)."""
        for attempt in range(60):
            try:
                await asyncio.wait_for(gp.publish_envelope(envelope, "referral.submitted"), 15)
                return
            except (Exception, asyncio.CancelledError):
                # Its node went: again, once the connection moved. A confirm lost with
                # its connection comes back cancelled (aiormq), which is no cancellation
                # of this task unless this task is cancelled.
                task = asyncio.current_task()
                if attempt == 59 or (task is not None and task.cancelling()):
                    raise
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        self.replicas.stop()
        try:
            await super().stop()
        except Exception:
            # The observer's connection was moving to another node (one restarted near the
            # end): its queue is deleted on a fresh connection.
            connection = await broker_nodes.connect_first(self.settings.broker_nodes)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(f"{self.settings.namespace}.observer")

    def notified_twice(self, rows: list[Any]) -> list[tuple[str, str, str]]:
        keys = [(r.cause_event_id, r.recipient_kind, r.channel) for r in rows]
        return [k for k in set(keys) if keys.count(k) > 1]


@pytest.fixture
async def replicated(
    rabbit: RabbitCluster, postgres: Any, tmp_path: Path
) -> AsyncIterator[ReplicatedCluster]:
    settings = Settings(
        environment=Environment.DEVELOPMENT,
        broker_urls=rabbit.urls,
        namespace=fresh_namespace(),
        data_dir=tmp_path / "data",
    )
    urls = {s.value: await postgres.create(s.value) for s in ServiceName}
    running = ReplicatedCluster(settings, urls, tmp_path / "logs")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        for procs in (running.processes, running.replicas):
            for service in ServiceName:
                log = procs.log(service)
                if "Traceback" in log:
                    print(f"--- {service} ---\n{log[-3000:]}")


def _most_leading(rabbit: RabbitCluster) -> str:
    leaders = rabbit.leaders()
    return leaders.most_common(1)[0][0] if leaders else rabbit.nodes[0].name


async def _check(
    cluster: ReplicatedCluster, count: int, timeout: float
) -> tuple[dict[str, int], int]:
    await cluster.settle(timeout=timeout)
    states = cluster.final_states()
    assert states["none"] == 0 and sum(states.values()) == count, states
    duplicates = cluster.duplicates()
    assert duplicates == {}, cluster.story(duplicates)
    rows = await cluster.notifications()
    assert cluster.notified_twice(rows) == []
    assert not cluster.processes.dead() and not cluster.replicas.dead(), "a service died"
    return dict(states), len(rows)


async def test_leader_node_killed_mid_burst(
    rabbit: RabbitCluster, replicated: ReplicatedCluster
) -> None:
    started = time.monotonic()
    burst = asyncio.create_task(replicated.burst(REFERRALS, seed=31, pause=0.01))
    await asyncio.sleep(6)  # every stage busy
    victim = rabbit.node_named(await asyncio.to_thread(_most_leading, rabbit))
    killed_at = time.monotonic()
    await asyncio.to_thread(rabbit.kill, victim)  # kill -9 of its beam
    await asyncio.sleep(15)
    await asyncio.to_thread(rabbit.restart, victim)
    restarted_after = round(time.monotonic() - killed_at, 1)
    await burst
    states, notifications = await _check(replicated, REFERRALS, timeout=420)
    stall = replicated.stall(killed_at)
    record(
        "cluster: node leading the most queues killed (kill -9) mid-burst",
        {
            "referrals": REFERRALS,
            "replicas_per_service": 2,
            "final_states": states,
            "lost": 0,
            "duplicate_effects": 0,
            "notifications": notifications,
            "killed_node": victim.name,
            "restarted_after_seconds": restarted_after,
            "longest_stall_seconds": stall,
            "run_seconds": round(time.monotonic() - started, 1),
        },
    )


async def test_node_cut_off_mid_burst(rabbit: RabbitCluster, replicated: ReplicatedCluster) -> None:
    started = time.monotonic()
    burst = asyncio.create_task(replicated.burst(REFERRALS, seed=32, pause=0.01))
    await asyncio.sleep(6)
    victim = rabbit.node_named(await asyncio.to_thread(_most_leading, rabbit))
    paused_at = time.monotonic()
    rabbit.pause(victim)  # SIGSTOP: frozen, its sockets open, nobody told
    try:
        await asyncio.sleep(30)  # past net_ticktime (10 s) and the clients' heartbeats
    finally:
        rabbit.resume(victim)
    await asyncio.to_thread(rabbit.heal, victim)  # it rejoins the majority
    await burst
    states, notifications = await _check(replicated, REFERRALS, timeout=420)
    stall = replicated.stall(paused_at)
    record(
        "cluster: node cut off (paused 30 s) mid-burst, pause_minority",
        {
            "referrals": REFERRALS,
            "replicas_per_service": 2,
            "final_states": states,
            "lost": 0,
            "duplicate_effects": 0,
            "notifications": notifications,
            "paused_node": victim.name,
            "longest_stall_seconds": stall,
            "run_seconds": round(time.monotonic() - started, 1),
        },
    )
