"""Three scheduler processes on one queue and one PostgreSQL database: no slot is booked
twice, and every referral is assigned or waitlisted exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from sqlalchemy import func, select

from aiguillage.demo import wait_for_drain
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.reach import DEFAULT_LEAD_MINUTES, commune_area, travel_minutes
from services.scheduler.domain.slots import capacity_between
from services.scheduler.store import active_schedules
from services.scheduler.store.tables import appointments, bookings
from shared.db import Database
from shared.events import Decision, Priority, ReferralRegulated, new_id, utcnow
from shared.geo import commune, haversine_km
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import declare_topology
from tests.helpers import Tap, centre

pytestmark = pytest.mark.postgres

REFERRALS = 1000


async def _consumers(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.consumer_count or 0)


async def _until_centres(url: str, count: int) -> None:
    database = Database(url)
    try:
        for _ in range(100):
            async with database.transaction() as session:
                if len(await active_schedules(session)) >= count:
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError("centres not active")
    finally:
        await database.dispose()


def _reachable_from_rennes(centre: CentreSchedule, now: datetime) -> int:
    """The centre's places of the next 12 hours a patient of Rennes can reach: from the
    lead time and the travel to it on (domain/reach.py)."""
    rennes = commune("35238")
    assert rennes is not None
    km = haversine_km(rennes.lat, rennes.lon, centre.lat, centre.lon)
    travel = travel_minutes(km, commune_area(rennes))
    earliest = now + timedelta(minutes=DEFAULT_LEAD_MINUTES + travel)
    return capacity_between(centre, earliest, now + timedelta(hours=12))


async def test_three_replicas_never_double_book(
    settings: Settings, postgres: Any, tmp_path: Path
) -> None:
    s = settings
    url = await postgres.create("scheduler")
    await declare_topology(s.broker_url, s.namespace)
    env = {
        **os.environ,
        "AIGUILLAGE_BROKER_URL": s.broker_url,
        "AIGUILLAGE_NAMESPACE": s.namespace,
        "AIGUILLAGE_SCHEDULER_DATABASE_URL": url,
        "AIGUILLAGE_SCHEDULER_HTTP_PORT": "",
        "AIGUILLAGE_LOG_LEVEL": "WARNING",
    }
    logs = [(tmp_path / f"scheduler-{i}.log").open("wb") for i in range(3)]
    replicas = [
        subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once; nothing waits here
            [sys.executable, "-m", "aiguillage", "run", "scheduler"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    try:
        queue = f"{s.namespace}.scheduler.referrals"
        for _ in range(150):
            if await _consumers(s.broker_url, queue) == 3:
                break
            await asyncio.sleep(0.2)
        assert await _consumers(s.broker_url, queue) == 3
        now = utcnow()
        async with Tap(s.broker_url, s.namespace, "slot.assigned.*", "referral.waitlisted") as tap:
            async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
                for name, insee in [("rennes-1", "35238"), ("st-gregoire-1", "35278")]:
                    await pub.publish(centre(name, insee, boxes=2), correlation_id=name)
                await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
                # Delivered is not committed: wait until both centres are in the database,
                # or early referrals would wait, then be served: two outcomes, rightly.
                await _until_centres(url, 2)
                for i in range(REFERRALS):
                    referral_id = f"r-{i:04d}"
                    await pub.publish(
                        ReferralRegulated(
                            referral_id=referral_id,
                            patient_ref=f"pat-{i}",
                            decision=Decision.ORIENT,
                            priority=Priority.ROUTINE,
                            deadline=now + timedelta(hours=12),
                            protocol_version="1",
                            decided_by="protocol",
                            decision_id=new_id(),
                            age=40,
                            commune_insee="35238",
                            departement="35",
                        ),
                        correlation_id=referral_id,
                    )
            await tap.wait_for(lambda es: len(es) >= REFERRALS, timeout=240)
            await asyncio.sleep(2)  # room for a wrong second outcome
        outcomes = Counter(e.data["referral_id"] for e in tap.envelopes)
        assert len(outcomes) == REFERRALS
        assert set(outcomes.values()) == {1}, [r for r, n in outcomes.items() if n > 1][:5]
        assigned = {e.data["referral_id"] for e in tap.of_type("slot.assigned")}
        slots = [
            (e.data["centre_id"], e.data["start"], e.data["box"])
            for e in tap.of_type("slot.assigned")
        ]
        assert len(slots) == len(set(slots)), "a slot was booked twice"
        database = Database(url)
        try:
            async with database.transaction() as session:
                booked = await session.scalar(select(func.count()).select_from(bookings))
                distinct = await session.scalar(
                    select(func.count()).select_from(
                        select(bookings.c.centre_id, bookings.c.start, bookings.c.box)
                        .distinct()
                        .subquery()
                    )
                )
                per_referral = (
                    await session.execute(
                        select(appointments.c.referral_id, func.count())
                        .group_by(appointments.c.referral_id)
                        .having(func.count() > 1)
                    )
                ).all()
                schedules = await active_schedules(session)
            capacity = sum(_reachable_from_rennes(x, now) for x in schedules)
        finally:
            await database.dispose()
        assert booked == distinct == len(assigned)
        assert per_referral == []
        # Fewer slots than patients: the rest wait, and every free slot they can reach was
        # used (one slot of each centre may have come out of reach as they were booked).
        assert len(assigned) < REFERRALS
        assert capacity - 2 * 2 <= len(assigned) <= capacity
    finally:
        for replica in replicas:
            replica.terminate()
        for replica in replicas:
            try:
                replica.wait(20)
            except subprocess.TimeoutExpired:
                replica.kill()
        for log in logs:
            log.close()
