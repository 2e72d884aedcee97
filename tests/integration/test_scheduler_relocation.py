"""A booked patient now elsewhere (``patient.relocated``, issue 36), at the scheduler,
on both databases: moved to a nearer centre when a reachable slot no later is free
there (``appointment.rescheduled`` with its reason, the old slot released); kept where
they are when no centre is nearer, or when the appointment is due."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.scheduler.domain.reach import Area, travel_minutes
from services.scheduler.handlers import SchedulerConfig, SchedulerHandlers
from services.scheduler.handlers.relocations import RELOCATED_FR
from services.scheduler.store.tables import appointments, bookings, centres, origins, waitlist
from shared.db import Database, as_utc
from shared.events import PatientRelocated, utcnow
from shared.geo import commune, haversine_km
from shared.migrations import upgrade
from tests.helpers import centre, handle, oriented, scheduler_queue

RENNES, SAINT_MALO, CESSON = "35238", "35288", "35051"
LEAD = 30.0


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


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def booked_in_rennes(database: Database, handlers: SchedulerHandlers, ref: str) -> Any:
    """Two centres, Rennes and Saint-Malo; the patient, in Rennes, booked in Rennes."""
    for centre_id, insee in (("rennes", RENNES), ("malo", SAINT_MALO)):
        await handle(database, scheduler_queue(handlers, "centres"), centre(centre_id, insee))
    done = await handle(database, scheduler_queue(handlers, "referrals"), oriented(ref, RENNES))
    [slot] = [e for e in done.emitted if e.type == "slot.assigned"]
    assert slot.data["centre_id"] == "rennes"
    return await row(database, slot.data["appointment_id"])


async def row(database: Database, appointment_id: str) -> Any:
    async with database.transaction() as session:
        query = (
            select(appointments, centres.c.lat, centres.c.lon)
            .join(centres, centres.c.id == appointments.c.centre_id)
            .where(appointments.c.id == appointment_id)
        )
        return (await session.execute(query)).one()


async def held(database: Database, appointment_id: str) -> bool:
    async with database.transaction() as session:
        found = await session.scalar(
            select(bookings.c.appointment_id).where(bookings.c.appointment_id == appointment_id)
        )
    return found is not None


def relocated(ref: str, insee: str) -> PatientRelocated:
    return PatientRelocated(
        referral_id=ref,
        patient_ref=f"pat-{ref}",
        commune_insee=insee,
        departement=insee[:2],
        previous_commune_insee=RENNES,
    )


async def test_a_patient_now_in_saint_malo_is_booked_nearer_no_later(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=clock)
    old = await booked_in_rennes(database, handlers, "r-moved")
    done = await handle(
        database, scheduler_queue(handlers, "referrals"), relocated("r-moved", SAINT_MALO)
    )

    assert [e.type for e in done.emitted] == ["appointment.rescheduled", "appointment.cancelled"]
    moved, cancelled = done.emitted
    assert (moved.data["centre_id"], moved.data["reason"]) == ("malo", RELOCATED_FR)
    assert moved.data["previous_appointment_id"] == old.id
    assert cancelled.data["replaced_by"] == moved.data["appointment_id"]
    new = await row(database, moved.data["appointment_id"])
    assert as_utc(new.start) <= as_utc(old.start)  # never later for being nearer
    home = commune(SAINT_MALO)
    assert home is not None
    km = haversine_km(home.lat, home.lon, new.lat, new.lon)
    assert km < haversine_km(home.lat, home.lon, old.lat, old.lon)
    reachable = clock.now + timedelta(minutes=LEAD + travel_minutes(km, Area.URBAN))
    assert reachable <= as_utc(new.start)
    # The old slot is free, the old appointment over; the origin follows the patient.
    assert not await held(database, old.id) and await held(database, new.id)
    assert (await row(database, old.id)).status == "cancelled"
    async with database.transaction() as session:
        place = await session.scalar(
            select(origins.c.commune_insee).where(origins.c.referral_id == "r-moved")
        )
    assert place == SAINT_MALO


async def test_no_nearer_centre_keeps_the_appointment(database: Database) -> None:
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=Clock())
    old = await booked_in_rennes(database, handlers, "r-cesson")
    done = await handle(
        database, scheduler_queue(handlers, "referrals"), relocated("r-cesson", CESSON)
    )
    assert done.emitted == []
    assert (await row(database, old.id)).status == "booked" and await held(database, old.id)


async def test_an_appointment_due_is_kept(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=clock)
    old = await booked_in_rennes(database, handlers, "r-due")
    clock.now = as_utc(old.start) + timedelta(minutes=1)
    done = await handle(
        database, scheduler_queue(handlers, "referrals"), relocated("r-due", SAINT_MALO)
    )
    assert done.emitted == []
    assert (await row(database, old.id)).status == "booked" and await held(database, old.id)


async def test_a_patient_never_booked_is_only_relocated(database: Database) -> None:
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=Clock())
    done = await handle(
        database, scheduler_queue(handlers, "referrals"), relocated("r-none", SAINT_MALO)
    )
    assert done.emitted == []


async def test_a_waiting_patient_waits_from_their_new_place(database: Database) -> None:
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=Clock())
    done = await handle(database, scheduler_queue(handlers, "referrals"), oriented("r-wait"))
    assert "referral.waitlisted" in [e.type for e in done.emitted]  # no centre at all
    moved = relocated("r-wait", "22278")  # Saint-Brieuc, another département
    assert (await handle(database, scheduler_queue(handlers, "referrals"), moved)).emitted == []
    brieuc = commune("22278")
    assert brieuc is not None
    async with database.transaction() as session:
        waiting = (
            await session.execute(select(waitlist).where(waitlist.c.referral_id == "r-wait"))
        ).one()
    assert (waiting.departement, waiting.commune_insee) == ("22", "22278")
    assert (waiting.lat, waiting.lon) == pytest.approx((brieuc.lat, brieuc.lon))
