"""Outcomes in their time (issue 27), at the scheduler's centres' door, on both databases:
"vu" from the slot's start, "absent" from its end, a correction within 24 hours of the
recording (audited, and sent on the bus), refused after. The door judges with its own
clock (SchedulerHandlers' ``clock``, set here), never with a time the message carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.store.tables import appointments, bookings, outcome_corrections
from shared.consumer import Delivery
from shared.db import Database, as_utc
from shared.events import (
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    Envelope,
    EventPayload,
    PatientEscalated,
    new_id,
    utcnow,
)
from shared.migrations import upgrade
from shared.senders import ActorKind, Sender, SenderRefused
from tests.helpers import centre, handle, oriented, scheduler_queue

CENTRE = "rennes-a"
# What the centre's own broker user proves (shared/senders.py); via the notifier's
# HTTP door it would be the notifier's user, speaking for the centre.
CENTRE_USER = Sender(f"centre-{CENTRE}", ActorKind.CENTRE, CENTRE)


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
    """The scheduler's clock, set by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def at_door(
    database: Database, handlers: SchedulerHandlers, payload: EventPayload, sender: Sender
) -> Delivery:
    """The report through the centres' door, as its consumer hands it over: with the
    sender the broker proved and the key it came on."""
    async with database.transaction() as session:
        delivery = Delivery(
            session=session,
            envelope=Envelope.wrap(payload, source="centre", correlation_id=new_id()),
            source="scheduler",
            sender=sender,
            routing_key=payload.routing_key(),
        )
        await scheduler_queue(handlers, "consultations")(delivery)
    return delivery


async def refused(
    database: Database, handlers: SchedulerHandlers, payload: EventPayload, code: str
) -> str:
    """The door refuses it with ``code``; its French reason."""
    with pytest.raises(SenderRefused) as raised:
        await at_door(database, handlers, payload, CENTRE_USER)
    assert raised.value.code == code
    return raised.value.cause


class Booked:
    def __init__(self, data: dict[str, Any]) -> None:
        self.appointment_id = str(data["appointment_id"])
        self.referral_id = str(data["referral_id"])
        self.start = datetime.fromisoformat(data["start"])
        self.end = datetime.fromisoformat(data["end"])

    def seen(self) -> ConsultationCompleted:
        return ConsultationCompleted(
            appointment_id=self.appointment_id, referral_id=self.referral_id, centre_id=CENTRE
        )

    def no_show(self) -> ConsultationNoShow:
        return ConsultationNoShow(
            appointment_id=self.appointment_id, referral_id=self.referral_id, centre_id=CENTRE
        )

    def corrected(self, outcome: ConsultationOutcome, **extra: Any) -> ConsultationCorrected:
        return ConsultationCorrected(
            appointment_id=self.appointment_id,
            referral_id=self.referral_id,
            centre_id=CENTRE,
            outcome=outcome,
            **extra,
        )


async def booked(database: Database, handlers: SchedulerHandlers, referral: str) -> Booked:
    await handle(database, scheduler_queue(handlers, "centres"), centre(CENTRE, "35238"))
    delivery = await handle(database, scheduler_queue(handlers, "referrals"), oriented(referral))
    [slot] = [e for e in delivery.emitted if e.type == "slot.assigned"]
    return Booked(slot.data)


async def status(database: Database, appointment_id: str) -> tuple[str, bool]:
    """The appointment's status, and whether its slot is held."""
    async with database.transaction() as session:
        row = (
            await session.execute(select(appointments).where(appointments.c.id == appointment_id))
        ).one()
        held = await session.scalar(
            select(bookings.c.appointment_id).where(bookings.c.appointment_id == appointment_id)
        )
    return row.status, held is not None


async def corrections(database: Database, appointment_id: str) -> list[Any]:
    async with database.transaction() as session:
        query = (
            select(outcome_corrections)
            .where(outcome_corrections.c.appointment_id == appointment_id)
            .order_by(outcome_corrections.c.corrected_at)
        )
        return list((await session.execute(query)).all())


async def test_seen_is_refused_before_the_start_and_recorded_from_it(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(clock=clock)
    appt = await booked(database, handlers, "r-seen")

    clock.now = appt.start - timedelta(minutes=1)
    reason = await refused(database, handlers, appt.seen(), "outcome_before_start")
    assert "« vu » ne peut être noté qu'à partir de cette heure" in reason
    assert "(heure de Paris)" in reason
    assert await status(database, appt.appointment_id) == ("booked", True)

    clock.now = appt.start
    done = await at_door(database, handlers, appt.seen(), CENTRE_USER)
    assert [e.type for e in done.emitted] == ["consultation.completed"]
    assert await status(database, appt.appointment_id) == ("fulfilled", True)
    # Once: a second "vu" (or an "absent") is a correction, not a new recording.
    clock.now = appt.end
    await refused(database, handlers, appt.no_show(), "outcome_already_recorded")


async def test_absent_is_refused_before_the_end_and_frees_the_slot_from_it(
    database: Database,
) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(clock=clock)
    appt = await booked(database, handlers, "r-absent")

    clock.now = appt.start + (appt.end - appt.start) / 2  # the consultation has begun
    reason = await refused(database, handlers, appt.no_show(), "no_show_before_end")
    assert "le patient peut encore venir" in reason
    assert await status(database, appt.appointment_id) == ("booked", True)

    clock.now = appt.end
    done = await at_door(database, handlers, appt.no_show(), CENTRE_USER)
    assert [e.type for e in done.emitted] == ["consultation.no_show"]
    assert await status(database, appt.appointment_id) == ("noshow", False)


async def test_a_correction_within_24_hours_is_applied_audited_and_sent(
    database: Database,
) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(clock=clock)
    appt = await booked(database, handlers, "r-correct")
    recorded_at = appt.end + timedelta(minutes=5)
    clock.now = recorded_at
    await at_door(database, handlers, appt.no_show(), CENTRE_USER)

    # Absent -> vu, 23 hours on: the patient came after all. What the centre claims it
    # corrects is not believed: the door says from its own record.
    clock.now = recorded_at + timedelta(hours=23)
    claimed = appt.corrected(
        ConsultationOutcome.SEEN,
        previous_outcome=ConsultationOutcome.SEEN,
        test_prescribed=True,
        reason="patient arrivé en retard",
    )
    done = await at_door(database, handlers, claimed, CENTRE_USER)
    [sent] = done.emitted
    assert sent.type == "consultation.corrected"
    assert (sent.data["outcome"], sent.data["previous_outcome"]) == ("seen", "no_show")
    assert sent.data["test_prescribed"] is True
    assert await status(database, appt.appointment_id) == ("fulfilled", True)

    [audit] = await corrections(database, appt.appointment_id)
    assert (audit.from_outcome, audit.to_outcome) == ("no_show", "seen")
    assert (audit.actor, audit.sender_user, audit.via) == (
        f"centre-{CENTRE}",
        CENTRE_USER.user,
        None,
    )
    assert as_utc(audit.corrected_at) == clock.now
    assert (audit.referral_id, audit.centre_id) == (appt.referral_id, CENTRE)
    assert audit.reason == "patient arrivé en retard"
    assert audit.id == done.envelope.id

    # And back, still within 24 hours of the first recording: vu -> absent.
    clock.now = recorded_at + timedelta(hours=23, minutes=30)
    done = await at_door(
        database, handlers, appt.corrected(ConsultationOutcome.NO_SHOW), CENTRE_USER
    )
    assert done.emitted[0].data["previous_outcome"] == "seen"
    assert await status(database, appt.appointment_id) == ("noshow", False)
    assert [
        (c.from_outcome, c.to_outcome) for c in await corrections(database, appt.appointment_id)
    ] == [
        ("no_show", "seen"),
        ("seen", "no_show"),
    ]


async def test_a_correction_after_24_hours_is_refused(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(clock=clock)
    appt = await booked(database, handlers, "r-late")
    clock.now = appt.start
    await at_door(database, handlers, appt.seen(), CENTRE_USER)

    clock.now = appt.start + timedelta(hours=24)
    reason = await refused(
        database, handlers, appt.corrected(ConsultationOutcome.NO_SHOW), "correction_too_late"
    )
    assert "ne peut être corrigée que dans les 24 heures" in reason
    assert await status(database, appt.appointment_id) == ("fulfilled", True)
    assert await corrections(database, appt.appointment_id) == []


async def test_what_a_correction_may_not_do(database: Database) -> None:
    clock = Clock()
    handlers = SchedulerHandlers(clock=clock)
    appt = await booked(database, handlers, "r-nothing")
    clock.now = appt.end
    # Nothing recorded yet: nothing to correct.
    await refused(
        database, handlers, appt.corrected(ConsultationOutcome.SEEN), "nothing_to_correct"
    )
    await at_door(database, handlers, appt.seen(), CENTRE_USER)
    await refused(
        database, handlers, appt.corrected(ConsultationOutcome.SEEN), "correction_unchanged"
    )
    # Another centre may not correct it: its own appointments only, before any time rule.
    other = Sender("centre-paris-b", ActorKind.CENTRE, "paris-b")
    foreign = ConsultationCorrected(
        appointment_id=appt.appointment_id,
        referral_id=appt.referral_id,
        centre_id="paris-b",
        outcome=ConsultationOutcome.NO_SHOW,
    )
    with pytest.raises(SenderRefused) as raised:
        await at_door(database, handlers, foreign, other)
    assert raised.value.code == "sender_inconsistent"
    assert await corrections(database, appt.appointment_id) == []


async def test_an_escalation_carries_the_departement_the_door_recorded(
    database: Database,
) -> None:
    """Issue 28: the notifier tells the SAMUs of the département the door puts on the
    escalation, from its own record of the referral: a centre's word for it is not
    taken (a Rennes patient is not sent to SAMU 75 because a centre says 75)."""
    handlers = SchedulerHandlers(clock=Clock())
    appt = await booked(database, handlers, "r-escalated")
    claimed = PatientEscalated(
        referral_id=appt.referral_id,
        centre_id=CENTRE,
        appointment_id=appt.appointment_id,
        reason="SpO2 86 %",
        departement="75",
    )
    done = await at_door(database, handlers, claimed, CENTRE_USER)
    [sent] = done.emitted
    assert (sent.type, sent.data["departement"]) == ("patient.escalated", "35")
