"""kill -9 each service in turn in the middle of a burst, and restart it: every referral
reaches exactly one final state, nobody is told twice, nothing is missing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared.settings import ServiceName
from tests.faults.conftest import Cluster

pytestmark = pytest.mark.faults

FIGURES = Path(__file__).with_name("figures.json")


def record(name: str, figures: dict[str, object]) -> None:
    """The figures the tests saw, for docs/reliability.md."""
    existing = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    existing[name] = figures
    FIGURES.write_text(json.dumps(existing, indent=2, sort_keys=True))


async def test_kill_each_service_in_turn_mid_burst(cluster: Cluster) -> None:
    burst = asyncio.create_task(cluster.burst(240, seed=7, pause=0.02))
    for service in ServiceName:
        await asyncio.sleep(0.8)
        await cluster.restart(service)  # kill -9, then start again
    await burst
    await cluster.settle()
    states = cluster.final_states()
    assert states["none"] == 0 and sum(states.values()) == 240
    duplicates = cluster.duplicates()
    assert duplicates == {}, cluster.story(duplicates)
    rows = await cluster.notifications()
    keys = [(r.cause_event_id, r.recipient_kind, r.channel) for r in rows]
    assert len(keys) == len(set(keys))
    record(
        "kill -9 each service mid-burst",
        {
            "referrals": 240,
            "final_states": dict(states),
            "duplicate_effects": 0,
            "notifications": len(rows),
            "lost": 0,
        },
    )
