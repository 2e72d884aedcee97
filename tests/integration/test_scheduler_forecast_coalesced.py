"""The forecast after a capacity change is coalesced (issue 31): the ARS's decisions
mark their département due once committed, none runs a forecast in the consumer's
transaction, and the watch then forecasts each département once, however many
centres were activated in a row; a decision rolled back marks nothing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.handlers.forecasts import ForecastWatch
from shared.db import Database
from shared.messaging_tables import outbox
from shared.migrations import upgrade
from tests.helpers import centre, handle, scheduler_queue

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'scheduler.db'}")
    await upgrade(db, "services.scheduler:migrations")
    try:
        yield db
    finally:
        await db.dispose()


async def _forecasts(database: Database) -> Counter[str]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(outbox.c.body).where(outbox.c.event_type == "capacity.forecast")
        )
        return Counter(json.loads(body)["data"]["departement"] for (body,) in rows)


async def test_a_burst_of_decisions_gives_one_forecast_per_departement(
    database: Database,
) -> None:
    handlers = SchedulerHandlers(clock=lambda: NOW)
    centres = scheduler_queue(handlers, "centres")
    # 155 centres activated in a row, in Rennes (35) and Paris (75).
    for n in range(155):
        insee = "35238" if n % 2 else "75115"
        await handle(database, centres, centre(f"c-{n}", insee, boxes=1))
    assert await _forecasts(database) == Counter()  # none in the consumer's path
    assert handlers.forecasts_due.pending == {"35", "75"}
    watch = ForecastWatch(
        database, lambda: NOW, lambda: None, 900, 24.0, due=handlers.forecasts_due
    )
    assert await watch.run_due() == 2
    assert await _forecasts(database) == Counter({"35": 1, "75": 1})
    assert await watch.run_due() == 0  # nothing due any more


async def test_the_watch_forecasts_a_marked_departement_after_the_burst_gathers(
    database: Database,
) -> None:
    handlers = SchedulerHandlers(clock=lambda: NOW)
    centres = scheduler_queue(handlers, "centres")
    notified = asyncio.Event()
    watch = ForecastWatch(
        database, lambda: NOW, notified.set, 3600, 24.0, due=handlers.forecasts_due, coalesce=0.2
    )
    await watch.start()
    try:
        await asyncio.wait_for(watch.rounded.wait(), 30)  # the first, on no centre
        for n in range(5):
            await handle(database, centres, centre(f"r-{n}", "35238", boxes=1))
        await asyncio.wait_for(notified.wait(), 30)  # the marked ones forecast
    finally:
        await watch.stop()
    # Once after the burst gathers (twice if the machine took longer than the 0.2 s
    # between two decisions), never once per centre.
    assert 1 <= (await _forecasts(database))["35"] < 5


async def test_a_decision_rolled_back_marks_nothing(database: Database) -> None:
    handlers = SchedulerHandlers(clock=lambda: NOW)
    centres = scheduler_queue(handlers, "centres")

    async def fails(delivery: object) -> None:
        await centres(delivery)  # type: ignore[arg-type]
        raise RuntimeError("the transaction rolls back")

    with pytest.raises(RuntimeError):
        await handle(database, fails, centre("c-1", "35238"))
    assert handlers.forecasts_due.pending == frozenset()
