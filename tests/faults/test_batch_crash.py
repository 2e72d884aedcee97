"""kill -9 each service while it is inside a group-commit batch (several deliveries
claimed in one open transaction), and restart it: the batch's transaction dies with
the process, its deliveries come back unacked, and nothing is lost or done twice."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from shared.settings import ServiceName
from tests.faults.conftest import Cluster
from tests.faults.test_crashes import record

pytestmark = pytest.mark.faults

REFERRALS = 400

# A backend of the service whose last statement is a claim of several deliveries in
# one statement, in a transaction not yet committed: a batch being handled.
_IN_BATCH = """
SELECT pid, query FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state IN ('active', 'idle in transaction')
  AND query LIKE 'INSERT INTO inbox%' AND query LIKE '%), (%'
"""


async def kill_inside_a_batch(cluster: Cluster, service: ServiceName, timeout: float) -> int:
    """Wait until ``service`` holds a batch's transaction open, kill -9 it there; the
    number of deliveries the batch had claimed."""
    url = make_url(cluster.urls[service.value]).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = await connection.fetch(_IN_BATCH)
            if rows:
                cluster.processes.kill(service.value)
                return max(str(r["query"]).count("), (") + 1 for r in rows)
            await asyncio.sleep(0.002)
    finally:
        await connection.close()
    raise AssertionError(f"{service.value} was never seen inside a batch")


async def test_kill_inside_a_batch_loses_nothing_and_duplicates_nothing(
    cluster: Cluster,
) -> None:
    burst = asyncio.create_task(cluster.burst(REFERRALS, seed=11, pause=0.004))
    batches: dict[str, int] = {}
    try:
        for service in ServiceName:
            batches[service.value] = await kill_inside_a_batch(cluster, service, timeout=60)
            await cluster.restart(service, kill=False)
    finally:
        await burst
    await cluster.settle(timeout=240)
    states = cluster.final_states()
    assert states["none"] == 0 and sum(states.values()) == REFERRALS
    duplicates = cluster.duplicates()
    assert duplicates == {}, cluster.story(duplicates)
    rows = await cluster.notifications()
    keys = [(r.cause_event_id, r.recipient_kind, r.channel) for r in rows]
    assert len(keys) == len(set(keys))
    assert all(size >= 2 for size in batches.values())
    record(
        "kill -9 inside a group-commit batch",
        {
            "referrals": REFERRALS,
            "deliveries_in_the_killed_batch": batches,
            "final_states": dict(states),
            "duplicate_effects": 0,
            "notifications": len(rows),
            "lost": 0,
        },
    )
