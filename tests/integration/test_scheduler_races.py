"""Two scheduler transactions racing on one waiting patient, on the shared PostgreSQL
database of two replicas: the patient is booked once.

The cluster test saw it (issue 20, a CI run): early referrals waited while the centres'
activations were still being handled, then two replicas each activated a centre, each
drained the waiting list, and each booked the same patient. Here the race is made
certain: the first transaction has booked the patient and is held open while the second
runs its drain, and commits only once the second is waiting on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from services.scheduler import store
from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.store.tables import appointments, waitlist
from shared.consumer import Delivery
from shared.db import Database
from shared.events import (
    Priority,
    new_id,
    utcnow,
)
from shared.migrations import upgrade
from tests.helpers import centre, handle, oriented, scheduler_queue

pytestmark = pytest.mark.postgres

MIGRATIONS = "services.scheduler:migrations"


@pytest.fixture
async def database(postgres: Any) -> AsyncIterator[Database]:
    db = Database(await postgres.create("scheduler"))
    await upgrade(db, MIGRATIONS)
    try:
        yield db
    finally:
        await db.dispose()


def assigned(*deliveries: Delivery) -> list[str]:
    return [
        e.data["referral_id"] for d in deliveries for e in d.emitted if e.type == "slot.assigned"
    ]


async def booked_count(database: Database, referral_id: str) -> int:
    async with database.transaction() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(appointments)
                .where(appointments.c.referral_id == referral_id, appointments.c.status == "booked")
            )
            or 0
        )


async def test_two_replicas_draining_at_once_book_a_waiting_patient_once(
    database: Database,
) -> None:
    handlers = SchedulerHandlers()
    # No centre yet: the patient waits.
    waiting = await handle(database, scheduler_queue(handlers, "referrals"), oriented("r-wait"))
    assert [e.type for e in waiting.emitted][:1] == ["referral.waitlisted"]

    # Replica A activates a centre near them, drains and books them; not committed yet.
    first_done, first_go = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(
        handle(
            database,
            scheduler_queue(handlers, "centres"),
            centre("rennes-a", "35238"),
            handled=first_done,
            commit=first_go,
        )
    )
    await asyncio.wait_for(first_done.wait(), 10)
    # Replica B activates another centre near them and drains the list, which (read
    # before A commits) still holds the patient.
    second = asyncio.create_task(
        handle(
            database,
            scheduler_queue(SchedulerHandlers(), "centres"),
            centre("st-gregoire-b", "35278"),
        )
    )
    await asyncio.sleep(1.0)
    assert not second.done(), "the second drain should wait for the first's hold"
    first_go.set()
    a, b = await asyncio.wait_for(asyncio.gather(first, second), 20)

    assert assigned(a, b) == ["r-wait"]
    assert await booked_count(database, "r-wait") == 1
    async with database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(waitlist)) == 0


async def test_a_new_decision_books_a_waiting_patient_and_takes_them_off_the_list(
    database: Database,
) -> None:
    handlers = SchedulerHandlers()
    await handle(database, scheduler_queue(handlers, "centres"), centre("rennes-c", "35238"))
    # Listed while a slot was free (a drain the list missed): a decision then books them.
    async with database.transaction() as session:
        now = utcnow()
        await store.put_on_waitlist(
            session,
            referral_id="r-listed",
            patient_ref="pat-listed",
            priority=Priority.ROUTINE.value,
            priority_rank=Priority.ROUTINE.rank,
            deadline=now + timedelta(hours=12),
            departement="35",
            commune_insee="35238",
            lat=48.11,
            lon=-1.68,
            test_eligible=False,
            queued_at=now,
        )
    decided = await handle(database, scheduler_queue(handlers, "referrals"), oriented("r-listed"))
    assert assigned(decided) == ["r-listed"]
    async with database.transaction() as session:
        assert not await store.hold_waiting(session, "r-listed")
    # The next centre's drain finds nobody to book again.
    drained = await handle(
        database, scheduler_queue(handlers, "centres"), centre("st-gregoire-c", "35278")
    )
    assert assigned(drained) == []
    assert await booked_count(database, "r-listed") == 1


async def test_the_database_refuses_a_second_booked_appointment_for_a_referral(
    database: Database,
) -> None:
    handlers = SchedulerHandlers()
    await handle(database, scheduler_queue(handlers, "centres"), centre("rennes-d", "35238"))
    await handle(database, scheduler_queue(handlers, "referrals"), oriented("r-once"))
    async with database.transaction() as session:
        row = (
            await session.execute(
                select(appointments).where(appointments.c.referral_id == "r-once")
            )
        ).one()
    second = {**row._asdict(), "id": new_id(), "start": row.start + timedelta(hours=1)}
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(insert(appointments).values(**second))
    # Cancelled, it no longer counts: the referral may be booked again.
    async with database.transaction() as session:
        await store.set_appointment_status(session, row.id, "cancelled")
        await session.execute(insert(appointments).values(**second))
    assert await booked_count(database, "r-once") == 1
