"""The ARS's history of a day (issue 30), from the scheduler's store through its HTTP
route: booked, honoured, missed and waitlisted per département of the caller's region,
the day of Paris only; another region's département refused, another role too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import insert

from services.scheduler import store
from services.scheduler.app import build
from services.scheduler.store.history import day_figures
from services.scheduler.store.tables import appointments, centres, consultation_outcomes
from shared.auth import Role, issue_token
from shared.db import Database
from shared.migrations import upgrade
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings

PARIS = ZoneInfo("Europe/Paris")
DAY = date(2026, 12, 3)
# Stored in UTC, as the services store every time.
NOON = datetime(2026, 12, 3, 12, 0, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    settings = Settings(data_dir=tmp_path / "data", namespace="t-day-history")
    runtime = build(settings, in_memory=True)
    await upgrade(runtime.database, runtime.migrations)
    try:
        yield runtime
    finally:
        await runtime.database.dispose()


def _centre(centre_id: str, insee: str, dep: str) -> dict[str, object]:
    return {
        "id": centre_id,
        "name": centre_id,
        "kind": "temporary_dedicated",
        "commune_insee": insee,
        "departement": dep,
        "lat": 48.0,
        "lon": -1.6,
        "opening_hours": [],
        "boxes": 2,
        "consultation_minutes": 20,
        "first_day": DAY,
        "status": "active",
        "updated_at": NOON,
    }


def _appointment(n: int, centre_id: str, start: datetime, status: str) -> dict[str, object]:
    return {
        "id": f"a-{n}",
        "referral_id": f"r-{n}",
        "patient_ref": f"p-{n}",
        "centre_id": centre_id,
        "start": start,
        "end": start + timedelta(minutes=20),
        "box": 1,
        "priority": "routine",
        "distance_km": 1.0,
        "status": status,
        "created_at": start - timedelta(days=1),
    }


async def _the_day(runtime: ServiceRuntime | Database) -> None:
    database = runtime if isinstance(runtime, Database) else runtime.database
    async with database.transaction() as session:
        await session.execute(
            insert(centres),
            [_centre("rennes-a", "35238", "35"), _centre("paris-a", "75113", "75")],
        )
        # Still the 3rd in Paris; then the 4th in Paris, the 3rd in UTC.
        late = datetime(2026, 12, 3, 23, 40, tzinfo=PARIS).astimezone(UTC)
        next_day = datetime(2026, 12, 4, 0, 10, tzinfo=PARIS).astimezone(UTC)
        await session.execute(
            insert(appointments),
            [
                _appointment(1, "rennes-a", NOON, "fulfilled"),
                _appointment(2, "rennes-a", NOON, "noshow"),
                _appointment(3, "rennes-a", late, "booked"),
                _appointment(4, "rennes-a", NOON, "cancelled"),  # moved: not counted
                _appointment(5, "rennes-a", next_day, "booked"),
                _appointment(6, "paris-a", NOON, "fulfilled"),  # Île-de-France's
            ],
        )
        await session.execute(
            insert(consultation_outcomes),
            [
                {"appointment_id": a, "outcome": o, "recorded_at": NOON, "recorded_by": "c"}
                for a, o in (("a-1", "seen"), ("a-2", "no_show"), ("a-6", "seen"))
            ],
        )
        for referral, dep, at in (
            ("w-1", "35", NOON),
            ("w-2", "29", NOON),
            ("w-3", "35", next_day),
        ):
            await store.put_on_waitlist(
                session,
                referral_id=referral,
                patient_ref=referral,
                priority="routine",
                priority_rank=3,
                deadline=at + timedelta(days=1),
                departement=dep,
                commune_insee="35238",
                lat=48.1,
                lon=-1.7,
                test_eligible=False,
                queued_at=at,
            )
        # Served: gone from the list, still in the day's history.
        await store.leave_waitlist(session, "w-1")


def _client(runtime: ServiceRuntime, role: Role, subject: str) -> httpx.AsyncClient:
    token = issue_token(runtime.settings, role, subject, ServiceName.SCHEDULER)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runtime.http_app),
        base_url="http://scheduler",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_day_per_departement_of_the_ars_region(runtime: ServiceRuntime) -> None:
    await _the_day(runtime)
    async with _client(runtime, Role.ARS, "53") as bretagne:
        answer = await bretagne.get(f"/territory/days/{DAY.isoformat()}")
    assert answer.status_code == 200
    body = answer.json()
    by_dep = {d["departement"]: d for d in body["departements"]}
    # Every département of Bretagne, none of another region's.
    assert set(by_dep) == {"22", "29", "35", "56"}
    assert by_dep["35"] == {
        "departement": "35",
        "name": "Ille-et-Vilaine",
        "booked": 3,
        "seen": 1,
        "no_show": 1,
        "waitlisted": 1,
    }
    assert by_dep["29"]["waitlisted"] == 1 and by_dep["29"]["booked"] == 0
    async with _client(runtime, Role.ARS, "53") as bretagne:
        tomorrow = (await bretagne.get("/territory/days/2026-12-04")).json()
    assert {d["departement"]: d["booked"] for d in tomorrow["departements"]}["35"] == 1


async def test_another_region_or_role_is_refused(runtime: ServiceRuntime) -> None:
    await _the_day(runtime)
    async with _client(runtime, Role.ARS, "53") as bretagne:
        other = await bretagne.get(f"/territory/days/{DAY}", params={"departement": "75"})
        own = await bretagne.get(f"/territory/days/{DAY}", params={"departement": "35"})
        bad = await bretagne.get("/territory/days/hier")
    assert other.status_code == 404 and "75" in other.json()["detail"]
    assert [d["departement"] for d in own.json()["departements"]] == ["35"]
    assert bad.status_code == 422
    async with _client(runtime, Role.ARS, "11") as idf:
        paris = (await idf.get(f"/territory/days/{DAY}", params={"departement": "75"})).json()
    assert paris["departements"][0]["seen"] == 1
    async with _client(runtime, Role.CENTRE, "rennes-a") as centre:
        assert (await centre.get(f"/territory/days/{DAY}")).status_code == 403


async def test_the_day_of_paris_on_postgresql(postgres: Any) -> None:
    """The same day on PostgreSQL (timestamptz): the boundaries are Paris's midnights."""
    database = Database(await postgres.create("scheduler"))
    await upgrade(database, "services.scheduler:migrations")
    try:
        await _the_day(database)
        start = datetime(2026, 12, 3, tzinfo=PARIS).astimezone(UTC)
        async with database.transaction() as session:
            figures = await day_figures(session, start, start + timedelta(days=1))
    finally:
        await database.dispose()
    assert figures["35"] == {"booked": 3, "seen": 1, "no_show": 1, "waitlisted": 1}
    assert figures["75"] == {"booked": 1, "seen": 1, "no_show": 0, "waitlisted": 0}
