"""GET /territory/{code}/forecast (issue 31): what the ARS's page draws of a
département's saturation forecast, on the scheduler's own database: the last 72 hours'
arrivals per 6 hours as recorded, the places of its active centres on both sides of
now, the forecast's band ahead, the reserve centre suggested; another region's
département is the 404 of a missing one, and a centre's token is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from fastapi import FastAPI

from services.scheduler import store
from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.http.forecasts import router
from services.scheduler.http.state import SchedulerApi
from shared.auth import Role, authenticator, issue_token
from shared.db import Database
from shared.events import CentreSuspended, utcnow
from shared.migrations import upgrade
from shared.settings import ServiceName, Settings
from tests.helpers import centre, handle, scheduler_queue

KEYS = Settings(auth_secret="x" * 40)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'scheduler.db'}")
    await upgrade(db, "services.scheduler:migrations")
    try:
        yield db
    finally:
        await db.dispose()


async def _publishes_nothing(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("a read published at the door")


def _client(database: Database, role: Role, subject: str) -> httpx.AsyncClient:
    app = FastAPI()
    app.state.scheduler = SchedulerApi(
        database, _publishes_nothing, authenticator(KEYS, ServiceName.SCHEDULER)
    )
    app.include_router(router)
    token = issue_token(KEYS, role, subject, ServiceName.SCHEDULER)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_the_ars_reads_its_departements_forecast_and_its_chart(database: Database) -> None:
    handlers = SchedulerHandlers()
    centres = scheduler_queue(handlers, "centres")
    # Open day and night, 2 boxes of 20 minutes: 6 places an hour, 36 per 6 hours.
    await handle(database, centres, centre("rennes-a", "35238"))
    await handle(database, centres, centre("rennes-reserve", "35238"))
    await handle(database, centres, CentreSuspended(centre_id="rennes-reserve", reason="réserve"))
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    async with database.transaction() as session:
        # 300 a day over the last 3 days (twice the places), each 4.8 minutes.
        for n in range(900):
            at = now - timedelta(minutes=4.8 * n + 1)
            await store.record_arrival(session, "35", "routine", 48.11, -1.68, at)
    async with _client(database, Role.ARS, "53") as api:
        answer = await api.get("/territory/35/forecast")
        assert answer.status_code == 200, answer.text
        view = answer.json()
        other = await api.get("/territory/75/forecast")
    assert other.status_code == 404  # Paris is not Bretagne's
    assert view["departement"] == "35" and view["name"] == "Ille-et-Vilaine"
    blocks = view["blocks"]
    assert len(blocks) == 24 and [b["ahead"] for b in blocks] == [False] * 12 + [True] * 12
    # 300 a day: 75 per 6 hours (an arrival each 4.8 minutes: 75 to a block).
    assert [b["arrivals"] for b in blocks[:12]] == [75] * 12
    # From the centre's first day (yesterday, from midnight in Paris) on; none before.
    assert [b["places"] for b in blocks[12:]] == [36] * 12
    assert all(b["places"] <= 36 for b in blocks[:12]) and blocks[11]["places"] == 36
    band = [b["forecast"] for b in blocks[12:]]
    assert all(p10 <= p50 <= p90 for p10, p50, p90 in band)
    assert 50 <= band[0][1] <= 100  # about 75 more in the next 6 hours
    # Twice the places: full within hours, boxes to open, the reserve named.
    p50 = view["hours_until_full"]["p50"]
    assert p50 is not None and p50 < 24
    assert view["boxes_needed_72h"] >= view["boxes_needed_24h"] >= 1
    assert view["reserve_centres"] == ["rennes-reserve"]
    async with _client(database, Role.CENTRE, "rennes-a") as api:
        assert (await api.get("/territory/35/forecast")).status_code == 403
