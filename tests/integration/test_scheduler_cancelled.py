"""A consultation the centre could not hold ("annulé", issue 27), at the scheduler's
centres' door, on both databases: refused before the slot's start; from it, recorded
(never to be corrected), and the patient booked again at once at the best slot they can
reach, or waitlisted when none is; what goes on the bus says so. The door judges with
its own clock (SchedulerHandlers' ``clock``, set here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.scheduler.domain.reach import Area, travel_minutes
from services.scheduler.handlers import SchedulerConfig, SchedulerHandlers
from services.scheduler.store.tables import (
    appointments,
    bookings,
    centres,
    consultation_outcomes,
    waitlist,
)
from shared.consumer import Delivery
from shared.db import Database, as_utc
from shared.events import (
    CentreCancelReason,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationOutcome,
    Envelope,
    EventPayload,
    new_id,
    utcnow,
)
from shared.geo import commune, haversine_km
from shared.migrations import upgrade
from shared.senders import ActorKind, Sender, SenderRefused
from tests.helpers import centre, handle, oriented, scheduler_queue

CENTRE = "rennes-a"
CENTRE_USER = Sender(f"centre-{CENTRE}", ActorKind.CENTRE, CENTRE)
# A rural patient 13 km from Rennes: their reach is more than the lead time.
MOUAZE = "35197"
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


async def at_door(
    database: Database, handlers: SchedulerHandlers, payload: EventPayload
) -> Delivery:
    """The report through the centres' door, with the sender the broker proved."""
    async with database.transaction() as session:
        delivery = Delivery(
            session=session,
            envelope=Envelope.wrap(payload, source="centre", correlation_id=new_id()),
            source="scheduler",
            sender=CENTRE_USER,
            routing_key=payload.routing_key(),
        )
        await scheduler_queue(handlers, "consultations")(delivery)
    return delivery


async def refused(
    database: Database, handlers: SchedulerHandlers, payload: EventPayload, code: str
) -> str:
    with pytest.raises(SenderRefused) as raised:
        await at_door(database, handlers, payload)
    assert raised.value.code == code
    return raised.value.cause


class Booked:
    def __init__(self, data: dict[str, Any]) -> None:
        self.appointment_id = str(data["appointment_id"])
        self.referral_id = str(data["referral_id"])
        self.start = datetime.fromisoformat(data["start"])
        self.end = datetime.fromisoformat(data["end"])

    def cancelled(self, code: CentreCancelReason | None = None) -> ConsultationCancelled:
        return ConsultationCancelled(
            appointment_id=self.appointment_id,
            referral_id=self.referral_id,
            centre_id=CENTRE,
            reason_code=code,
        )


async def booked(database: Database, handlers: SchedulerHandlers, referral: str) -> Booked:
    await handle(database, scheduler_queue(handlers, "centres"), centre(CENTRE, "35238"))
    decided = oriented(referral, insee=MOUAZE)
    delivery = await handle(database, scheduler_queue(handlers, "referrals"), decided)
    [slot] = [e for e in delivery.emitted if e.type == "slot.assigned"]
    return Booked(slot.data)


async def appointment(database: Database, appointment_id: str) -> Any:
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


async def outcome(database: Database, appointment_id: str) -> Any:
    async with database.transaction() as session:
        query = select(consultation_outcomes).where(
            consultation_outcomes.c.appointment_id == appointment_id
        )
        return (await session.execute(query)).one_or_none()


async def test_cancelled_is_refused_before_the_start(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=clock)
    appt = await booked(database, handlers, "r-early")
    clock.now = appt.start - timedelta(minutes=1)
    reason = await refused(database, handlers, appt.cancelled(), "outcome_before_start")
    assert "« annulé » ne peut être noté qu'à partir de cette heure" in reason
    row = await appointment(database, appt.appointment_id)
    assert row.status == "booked" and await held(database, appt.appointment_id)
    assert await outcome(database, appt.appointment_id) is None


async def test_cancelled_books_the_patient_again_within_reach_and_says_so(
    database: Database,
) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=clock)
    appt = await booked(database, handlers, "r-rebooked")
    clock.now = appt.start + timedelta(minutes=2)  # the doctor has not come
    done = await at_door(database, handlers, appt.cancelled(CentreCancelReason.DOCTOR_ABSENT))

    types = [e.type for e in done.emitted]
    assert types == ["consultation.cancelled", "appointment.rescheduled", "appointment.cancelled"]
    report, moved, old = done.emitted
    assert report.data["reason_code"] == "doctor_absent"
    why = "médecin absent"
    assert (moved.data["moved_by"], moved.data["reason"]) == ("centre", why)
    assert moved.data["previous_appointment_id"] == appt.appointment_id
    assert (old.data.get("cancelled_by"), old.data.get("replaced_by")) == (
        "centre",
        moved.data["appointment_id"],
    )
    # The old appointment is over, its slot released; the outcome kept, by whom.
    gone = await appointment(database, appt.appointment_id)
    assert gone.status == "cancelled" and not await held(database, appt.appointment_id)
    kept = await outcome(database, appt.appointment_id)
    assert (kept.outcome, as_utc(kept.recorded_at), kept.recorded_by) == (
        "cancelled",
        clock.now,
        f"centre-{CENTRE}",
    )
    # The new one, before the patient's deadline, no sooner than they can get there.
    new = await appointment(database, moved.data["appointment_id"])
    assert new.status == "booked" and await held(database, new.id)
    home = commune(MOUAZE)
    assert home is not None
    km = haversine_km(home.lat, home.lon, new.lat, new.lon)
    assert km > 5  # the reach is more than the lead time: the test proves it
    reachable = clock.now + timedelta(minutes=LEAD + travel_minutes(km, Area.RURAL))
    assert reachable <= as_utc(new.start) <= clock.now + timedelta(hours=48)


async def test_cancelled_waitlists_the_patient_when_no_slot_is_in_reach(
    database: Database,
) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=clock)
    appt = await booked(database, handlers, "r-waiting")
    clock.now = appt.start
    # Nothing this patient could reach before their deadline (48 hours from now, as a
    # moved patient's): a lead time beyond it.
    far = SchedulerHandlers(SchedulerConfig(lead_minutes=60 * 49), clock=clock)
    done = await at_door(database, far, appt.cancelled())
    assert [e.type for e in done.emitted][:3] == [
        "consultation.cancelled",
        "appointment.cancelled",
        "referral.waitlisted",
    ]
    cancelled, waiting = done.emitted[1], done.emitted[2]
    assert cancelled.data["cancelled_by"] == "centre" and cancelled.data.get("replaced_by") is None
    assert cancelled.data["reason"] == "empêchement du centre"
    assert waiting.data["referral_id"] == appt.referral_id
    async with database.transaction() as session:
        queued = await session.scalar(
            select(waitlist.c.referral_id).where(waitlist.c.referral_id == appt.referral_id)
        )
    assert queued == appt.referral_id


async def test_cancelled_is_never_corrected_nor_recorded_again(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=clock)
    appt = await booked(database, handlers, "r-final")
    clock.now = appt.start
    await at_door(database, handlers, appt.cancelled(CentreCancelReason.BOX_CLOSED))
    clock.now = appt.end + timedelta(minutes=5)
    for into in (ConsultationOutcome.SEEN, ConsultationOutcome.NO_SHOW):
        corrected = ConsultationCorrected(
            appointment_id=appt.appointment_id,
            referral_id=appt.referral_id,
            centre_id=CENTRE,
            outcome=into,
        )
        reason = await refused(database, handlers, corrected, "appointment_cancelled")
        assert "le patient a reçu un autre rendez-vous" in reason
    seen = ConsultationCompleted(
        appointment_id=appt.appointment_id, referral_id=appt.referral_id, centre_id=CENTRE
    )
    await refused(database, handlers, seen, "appointment_cancelled")
    await refused(database, handlers, appt.cancelled(), "appointment_cancelled")
    assert (await appointment(database, appt.appointment_id)).status == "cancelled"


async def test_seen_is_never_corrected_into_cancelled(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(SchedulerConfig(lead_minutes=LEAD), clock=clock)
    appt = await booked(database, handlers, "r-seen")
    clock.now = appt.start
    seen = ConsultationCompleted(
        appointment_id=appt.appointment_id, referral_id=appt.referral_id, centre_id=CENTRE
    )
    await at_door(database, handlers, seen)
    into = ConsultationCorrected(
        appointment_id=appt.appointment_id,
        referral_id=appt.referral_id,
        centre_id=CENTRE,
        outcome=ConsultationOutcome.CANCELLED,
    )
    await refused(database, handlers, into, "correction_to_cancelled")
    await refused(database, handlers, appt.cancelled(), "outcome_already_recorded")
    assert (await appointment(database, appt.appointment_id)).status == "fulfilled"
