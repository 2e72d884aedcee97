"""What the few-option holds learn from (policy.py, 4.), on both databases: each booking
records how many centres its patient had in reach, and the recent demand counts the
bookings of few-option patients, all and urgent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.scheduler import store
from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.store.tables import appointments
from shared.db import Database
from shared.events import (
    Priority,
    utcnow,
)
from shared.migrations import upgrade
from tests.helpers import centre, handle, oriented, scheduler_queue


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: Any, postgres: Any, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgres":
        url = await postgres.create("scheduler")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'scheduler.db'}"
    db = Database(url)
    await upgrade(db, "services.scheduler:migrations")
    try:
        yield db
    finally:
        await db.dispose()


async def test_each_booking_records_its_options_and_the_demand_counts_the_few(
    database: Database,
) -> None:
    handlers = SchedulerHandlers()
    # Three centres around Rennes, one in Paris (300 km away: out of Rennes's reach).
    for centre_id, insee in [
        ("rennes-a", "35238"),
        ("rennes-b", "35238"),
        ("st-gregoire", "35278"),
        ("paris", "75115"),
    ]:
        await handle(
            database, scheduler_queue(handlers, "centres"), centre(centre_id, insee, boxes=4)
        )
    await handle(
        database,
        scheduler_queue(handlers, "referrals"),
        oriented("r-rennes", "35238", Priority.ASAP),
    )
    await handle(
        database,
        scheduler_queue(handlers, "referrals"),
        oriented("r-paris", "75115", Priority.ROUTINE),
    )
    async with database.transaction() as session:
        rows = (await session.execute(select(appointments))).all()
        options = {row.referral_id: row.options for row in rows}
        centre_of = {row.referral_id: row.centre_id for row in rows}
        since = utcnow() - timedelta(hours=1)
        ids = ["rennes-a", "rennes-b", "st-gregoire", "paris"]
        few = await store.recent_demand(session, ids, since, few_options=3)
        none = await store.recent_demand(session, ids, since, few_options=0)
    assert options == {"r-rennes": 3, "r-paris": 1}
    rennes = few[centre_of["r-rennes"]]
    assert (rennes.bookings, rennes.urgent, rennes.few, rennes.few_urgent) == (1, 1, 1, 1)
    paris = few["paris"]
    assert (paris.bookings, paris.urgent, paris.few, paris.few_urgent) == (1, 0, 1, 0)
    assert all(d.few == d.few_urgent == 0 for d in none.values())
    assert sum(d.bookings for d in none.values()) == 2
