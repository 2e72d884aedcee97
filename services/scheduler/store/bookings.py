"""Slots and appointments: the bookings that hold slots (protected by the database:
one booking per centre, start and box), the appointments they are for, and what the
policy learns from them (recent demand)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.domain.assignment import Candidate
from services.scheduler.domain.policy import Demand
from services.scheduler.store.tables import appointments, bookings
from shared.db import as_utc

# A row of any shape: the callers read its columns by name.
AnyRow = Row[*tuple[Any, ...]]

_BOOKED_SLOTS = select(bookings.c.centre_id, bookings.c.start, bookings.c.box).where(
    bookings.c.centre_id.in_(bindparam("ids", expanding=True)),
    bookings.c.start >= bindparam("start"),
    bookings.c.start <= bindparam("end"),
)


async def booked_slots(
    session: AsyncSession, centre_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, set[tuple[datetime, int]]]:
    booked: dict[str, set[tuple[datetime, int]]] = {c: set() for c in centre_ids}
    if not centre_ids:
        return booked
    rows = await session.execute(
        _BOOKED_SLOTS, {"ids": list(centre_ids), "start": start, "end": end}
    )
    for centre_id, slot_start, box in rows:
        booked[centre_id].add((as_utc(slot_start), box))
    return booked


async def try_book(
    session: AsyncSession,
    candidate: Candidate,
    *,
    appointment_id: str,
    referral_id: str,
    patient_ref: str,
    priority: str,
    now: datetime,
    test_eligible: bool = False,
    options: int | None = None,
) -> bool:
    """Book the candidate's slot unless someone else holds it.

    The insert runs in a savepoint: on a unique-key conflict (another replica took
    the slot since we read) only the savepoint rolls back and the caller tries its
    next candidate.
    """
    try:
        async with session.begin_nested():
            await session.execute(
                _INSERT_BOOKING,
                {
                    "centre_id": candidate.centre_id,
                    "start": candidate.start,
                    "box": candidate.box,
                    "appointment_id": appointment_id,
                },
            )
    except IntegrityError:
        return False
    await session.execute(
        _INSERT_APPOINTMENT,
        {
            "id": appointment_id,
            "referral_id": referral_id,
            "patient_ref": patient_ref,
            "centre_id": candidate.centre_id,
            "start": candidate.start,
            "end": candidate.end,
            "box": candidate.box,
            "priority": priority,
            "distance_km": candidate.distance_km,
            "test_eligible": test_eligible,
            "status": "booked",
            "created_at": now,
            "options": options,
        },
    )
    return True


_INSERT_BOOKING = insert(bookings)
_INSERT_APPOINTMENT = insert(appointments)
_RELEASE = delete(bookings).where(bookings.c.appointment_id == bindparam("appointment_id"))


async def release(session: AsyncSession, appointment_id: str) -> None:
    await session.execute(_RELEASE, {"appointment_id": appointment_id})


_BOOKED_APPOINTMENT = select(appointments).where(
    appointments.c.referral_id == bindparam("referral_id"),
    appointments.c.status == "booked",
)
_FUTURE_APPOINTMENTS = (
    select(appointments)
    .where(
        appointments.c.centre_id == bindparam("centre_id"),
        appointments.c.status == "booked",
        appointments.c.start >= bindparam("now"),
    )
    .order_by(appointments.c.start)
)
_PATIENT_OF_CENTRE = select(appointments.c.id).where(
    appointments.c.referral_id == bindparam("referral_id"),
    appointments.c.centre_id == bindparam("centre_id"),
)
_APPOINTMENT_STATUS = (
    update(appointments)
    .where(appointments.c.id == bindparam("appointment_id"))
    .values(status=bindparam("new_status"))
)
_APPOINTMENT_PRIORITY = (
    update(appointments)
    .where(appointments.c.id == bindparam("appointment_id"))
    .values(priority=bindparam("new_priority"), test_eligible=bindparam("new_test_eligible"))
)


async def booked_appointment(session: AsyncSession, referral_id: str) -> AnyRow | None:
    """The referral's booked appointment (every column of ``appointments``), or None."""
    return (await session.execute(_BOOKED_APPOINTMENT, {"referral_id": referral_id})).first()


async def booked_among(session: AsyncSession, referral_ids: Sequence[str]) -> set[str]:
    """Which of these referrals have a booked appointment."""
    if not referral_ids:
        return set()
    rows = await session.execute(_BOOKED_AMONG, {"ids": list(referral_ids)})
    return {referral_id for (referral_id,) in rows}


_BOOKED_AMONG = select(appointments.c.referral_id).where(
    appointments.c.referral_id.in_(bindparam("ids", expanding=True)),
    appointments.c.status == "booked",
)


async def future_appointments(
    session: AsyncSession, centre_id: str, now: datetime
) -> Sequence[AnyRow]:
    """The centre's booked appointments from ``now`` on, soonest first."""
    return (await session.execute(_FUTURE_APPOINTMENTS, {"centre_id": centre_id, "now": now})).all()


async def is_patient_of(session: AsyncSession, referral_id: str, centre_id: str) -> bool:
    """The centre has (or had) an appointment for this referral."""
    found = await session.scalar(
        _PATIENT_OF_CENTRE, {"referral_id": referral_id, "centre_id": centre_id}
    )
    return found is not None


async def set_appointment_status(session: AsyncSession, appointment_id: str, status: str) -> None:
    await session.execute(
        _APPOINTMENT_STATUS, {"appointment_id": appointment_id, "new_status": status}
    )


async def set_appointment_priority(
    session: AsyncSession, appointment_id: str, priority: str, test_eligible: bool
) -> None:
    await session.execute(
        _APPOINTMENT_PRIORITY,
        {
            "appointment_id": appointment_id,
            "new_priority": priority,
            "new_test_eligible": test_eligible,
        },
    )


_CENTRE_BOOKED = (
    select(func.count())
    .select_from(bookings)
    .where(
        bookings.c.centre_id == bindparam("centre_id"),
        bookings.c.start >= bindparam("start"),
        bookings.c.start < bindparam("end"),
    )
)


_BOOKED_BY_CENTRE = (
    select(bookings.c.centre_id, func.count())
    .where(bookings.c.start >= bindparam("start"), bookings.c.start < bindparam("end"))
    .group_by(bookings.c.centre_id)
)


async def booked_by_centre(session: AsyncSession, start: datetime, end: datetime) -> dict[str, int]:
    """Slots booked per centre starting in [start, end) (one statement: /metrics)."""
    rows = (await session.execute(_BOOKED_BY_CENTRE, {"start": start, "end": end})).all()
    return {centre_id: int(count) for centre_id, count in rows}


async def centre_booked(
    session: AsyncSession, centre_id: str, start: datetime, end: datetime
) -> int:
    """Slots booked at the centre starting in [start, end)."""
    count = await session.scalar(
        _CENTRE_BOOKED, {"centre_id": centre_id, "start": start, "end": end}
    )
    return int(count or 0)


_RECENT_DEMAND = (
    select(
        appointments.c.centre_id,
        appointments.c.priority,
        func.count(),
        func.min(appointments.c.created_at),
        # Booked by a few-option patient (a NULL, booked before it was recorded: no).
        func.sum(case((appointments.c.options <= bindparam("few_options"), 1), else_=0)),
    )
    .where(
        appointments.c.centre_id.in_(bindparam("ids", expanding=True)),
        appointments.c.created_at >= bindparam("since"),
    )
    .group_by(appointments.c.centre_id, appointments.c.priority)
)


async def recent_demand(
    session: AsyncSession, centre_ids: Sequence[str], since: datetime, few_options: int
) -> dict[str, Demand]:
    """Per centre, what the online policy learns its prices and holds from (``Demand``):
    appointments booked since ``since``, those of them for a priority more urgent than
    routine, when the earliest of them was booked (a rate over the span the bookings
    cover), and those of patients with at most ``few_options`` centres in reach, all and
    urgent ones."""
    if not centre_ids:
        return {}
    rows = await session.execute(
        _RECENT_DEMAND, {"ids": list(centre_ids), "since": since, "few_options": few_options}
    )
    out: dict[str, Demand] = {}
    for centre_id, priority, count, first, few in rows:
        first = as_utc(first)
        few = int(few or 0)
        urgent = priority != "routine"
        seen = out.get(centre_id, Demand(first=first))
        out[centre_id] = Demand(
            bookings=seen.bookings + count,
            urgent=seen.urgent + (count if urgent else 0),
            first=min(seen.first or first, first),
            few=seen.few + few,
            few_urgent=seen.few_urgent + (few if urgent else 0),
        )
    return out


_APPOINTMENT = select(appointments).where(appointments.c.id == bindparam("appointment_id"))
_APPOINTMENT_LOCKED = _APPOINTMENT.with_for_update()

_REPORTED_APPOINTMENT = (
    select(appointments).where(appointments.c.id == bindparam("appointment_id")).with_for_update()
)


async def appointment(
    session: AsyncSession, appointment_id: str, *, lock: bool = False
) -> AnyRow | None:
    """The appointment (every column), held until the transaction ends when ``lock``
    (PostgreSQL: two requests on one appointment wait for each other)."""
    query = _APPOINTMENT_LOCKED if lock else _APPOINTMENT
    return (await session.execute(query, {"appointment_id": appointment_id})).first()


async def reported_appointment(session: AsyncSession, appointment_id: str) -> AnyRow | None:
    """The appointment a centre reports on (every column), locked until the transaction
    ends on PostgreSQL: two reports on one appointment, at two replicas, apply in turn."""
    found = await session.execute(_REPORTED_APPOINTMENT, {"appointment_id": appointment_id})
    return found.first()


async def hold_again(session: AsyncSession, appointment: AnyRow) -> bool:
    """The appointment's slot held again (a no-show corrected: the patient came), unless
    another booking holds it now; True if held."""
    try:
        async with session.begin_nested():
            await session.execute(
                _INSERT_BOOKING,
                {
                    "centre_id": appointment.centre_id,
                    "start": appointment.start,
                    "box": appointment.box,
                    "appointment_id": appointment.id,
                },
            )
    except IntegrityError:
        return False
    return True
