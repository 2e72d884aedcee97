"""The scheduler's saturation forecast (issue 31) on its own database, the clock the
test's: a département whose arrivals double every 2 days gets a capacity.forecast a day
with hours until full shrinking, then the ARS's alert (kind forecast) once; a reserve
centre activated, the next forecast is longer and the alert is cleared."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from services.scheduler import store
from services.scheduler.app import build
from services.scheduler.domain.forecast import DEFAULT_PROFILE
from services.scheduler.handlers.forecasts import forecast_all
from services.scheduler.store.tables import centres
from shared.messaging_tables import outbox
from shared.migrations import upgrade
from shared.runtime import ServiceRuntime
from shared.settings import Settings

START = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # midnight in Paris, a Monday
HOURS = [{"weekday": d, "opens": "08:00", "closes": "20:00"} for d in range(7)]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = Settings(data_dir=tmp_path / "data", namespace="t-forecast")
    runtime = build(settings, in_memory=True)
    await upgrade(runtime.database, runtime.migrations)
    try:
        yield runtime
    finally:
        await runtime.database.dispose()


def _centre(centre_id: str, status: str, lat: float) -> dict[str, object]:
    # Two boxes, 20-minute consultations, 08:00-20:00: 72 places a day.
    return {
        "id": centre_id,
        "name": centre_id,
        "kind": "temporary_dedicated",
        "commune_insee": "35238",
        "departement": "35",
        "lat": lat,
        "lon": -1.68,
        "opening_hours": HOURS,
        "boxes": 2,
        "consultation_minutes": 20,
        "first_day": date(2026, 3, 1),
        "status": status,
        "updated_at": START,
    }


async def _arrive(runtime: ServiceRuntime, day: int) -> None:
    """Day ``day``'s arrivals (10 on day 0, doubling every 2 days), by the hour profile."""
    count = round(10 * 2 ** (day / 2))
    async with runtime.database.transaction() as session:
        for hour, weight in enumerate(DEFAULT_PROFILE):
            # Paris is UTC+1 in early March: local hour h is START + h hours.
            for _ in range(round(count * weight)):
                at = START + timedelta(days=day, hours=hour, minutes=30)
                await store.record_arrival(session, "35", "routine", 48.11, -1.68, at)


async def _staged(runtime: ServiceRuntime, event_type: str) -> list[dict[str, Any]]:
    async with runtime.database.transaction() as session:
        rows = await session.execute(
            select(outbox.c.body).where(outbox.c.event_type == event_type).order_by(outbox.c.seq)
        )
        return [json.loads(body)["data"] for (body,) in rows]


def _p50(forecast: dict[str, Any]) -> int:
    value = forecast.get("hours_until_full_p50")  # left out when None
    return 72 if value is None else int(value)


async def test_a_doubling_wave_shrinks_the_forecast_then_alerts_and_a_reserve_lengthens_it(
    runtime: ServiceRuntime,
) -> None:
    async with runtime.database.transaction() as session:
        await session.execute(insert(centres), [_centre("rennes-a", "active", 48.11)])
        await session.execute(insert(centres), [_centre("rennes-reserve", "suspended", 48.12)])
    alerts: list[dict[str, Any]] = []
    for day in range(10):
        await _arrive(runtime, day)
        now = START + timedelta(days=day + 1)  # midnight after the day: the test's clock
        assert await forecast_all(runtime.database, now, alert_hours=24.0) == 1
        alerts = [a for a in await _staged(runtime, "capacity.alert") if a["kind"] == "forecast"]
        if alerts:
            break
    forecasts = await _staged(runtime, "capacity.forecast")
    medians = [_p50(f) for f in forecasts]
    # A far saturation at first, then nearer and nearer, then under 24 h: the alert.
    assert medians[0] == 72, medians
    assert all(later <= earlier for earlier, later in itertools.pairwise(medians))
    assert medians[-1] < 24, medians
    assert [a["cleared"] for a in alerts] == [False]
    last = forecasts[-1]
    assert last["departement"] == "35" and last["growth_per_day"] == pytest.approx(0.35, abs=0.1)
    assert last["boxes_needed_72h"] >= last["boxes_needed_24h"] >= 1
    assert last["reserve_centres"] == ["rennes-reserve"]
    # The ARS's policy opens the reserve centre the forecast named: a longer forecast.
    async with runtime.database.transaction() as session:
        await store.set_centre_status(session, "rennes-reserve", "active", now)
    assert await forecast_all(runtime.database, now, alert_hours=24.0) == 1
    after = (await _staged(runtime, "capacity.forecast"))[-1]
    assert _p50(after) > medians[-1]
    assert after["boxes_needed_24h"] < last["boxes_needed_24h"]
    # Over 24 h now: the ARS is told the forecast alert ended.
    ended = [a for a in await _staged(runtime, "capacity.alert") if a["kind"] == "forecast"]
    assert [a["cleared"] for a in ended] == [False, True]
    # A second round at the same hour says the same and raises nothing more.
    assert await forecast_all(runtime.database, now, alert_hours=24.0) == 1
    assert (await _staged(runtime, "capacity.forecast"))[-1] == after
    assert len(await _staged(runtime, "capacity.alert")) == len(ended)


async def test_a_forecast_from_less_than_a_day_of_arrivals_alerts_no_one(
    runtime: ServiceRuntime,
) -> None:
    # No centre and 30 arrivals in the last hour: full at once, but a few minutes'
    # count is no rate to alert the ARS on.
    now = START + timedelta(hours=12)
    async with runtime.database.transaction() as session:
        for minute in range(30):
            at = now - timedelta(minutes=minute + 1)
            await store.record_arrival(session, "35", "routine", 48.11, -1.68, at)
    assert await forecast_all(runtime.database, now, alert_hours=24.0) == 1
    [published] = await _staged(runtime, "capacity.forecast")
    assert _p50(published) < 24
    assert await _staged(runtime, "capacity.alert") == []
