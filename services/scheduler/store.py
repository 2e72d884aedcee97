"""The scheduler's database adapter: centres as schedules, booked slots, bookings
protected by the database, and the waiting list."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.domain.assignment import Candidate
from services.scheduler.domain.centres import CentreSchedule, ScheduleChange
from services.scheduler.tables import appointments, bookings, capacity_changes, centres, origins
from shared.db import as_utc
from shared.events import OpeningPeriod


def _hours(raw: Any) -> tuple[OpeningPeriod, ...]:
    return tuple(OpeningPeriod.model_validate(p) for p in raw)


async def active_schedules(
    session: AsyncSession, *, departement: str | None = None, ids: Collection[str] | None = None
) -> list[CentreSchedule]:
    query = select(centres).where(centres.c.status == "active")
    if departement is not None:
        query = query.where(centres.c.departement == departement)
    if ids is not None:
        query = query.where(centres.c.id.in_(list(ids)))
    rows = (await session.execute(query.order_by(centres.c.id))).all()
    if not rows:
        return []
    changes: dict[str, list[ScheduleChange]] = defaultdict(list)
    change_rows = await session.execute(
        select(capacity_changes)
        .where(capacity_changes.c.centre_id.in_([r.id for r in rows]))
        .order_by(capacity_changes.c.recorded_at)
    )
    for c in change_rows:
        changes[c.centre_id].append(
            ScheduleChange(
                from_date=c.from_date,
                boxes=c.boxes,
                opening_hours=_hours(c.opening_hours) if c.opening_hours is not None else None,
                consultation_minutes=c.consultation_minutes,
            )
        )
    return [
        CentreSchedule(
            centre_id=r.id,
            lat=r.lat,
            lon=r.lon,
            departement=r.departement,
            opening_hours=_hours(r.opening_hours),
            boxes=r.boxes,
            consultation_minutes=r.consultation_minutes,
            first_day=r.first_day,
            changes=tuple(changes[r.id]),
        )
        for r in rows
    ]


async def booked_slots(
    session: AsyncSession, centre_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, set[tuple[datetime, int]]]:
    booked: dict[str, set[tuple[datetime, int]]] = {c: set() for c in centre_ids}
    if not centre_ids:
        return booked
    rows = await session.execute(
        select(bookings.c.centre_id, bookings.c.start, bookings.c.box).where(
            bookings.c.centre_id.in_(list(centre_ids)),
            bookings.c.start >= start,
            bookings.c.start <= end,
        )
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
) -> bool:
    """Book the candidate's slot unless someone else holds it.

    The insert runs in a savepoint: on a unique-key conflict (another replica took
    the slot since we read) only the savepoint rolls back and the caller tries its
    next candidate.
    """
    try:
        async with session.begin_nested():
            await session.execute(
                insert(bookings).values(
                    centre_id=candidate.centre_id,
                    start=candidate.start,
                    box=candidate.box,
                    appointment_id=appointment_id,
                )
            )
    except IntegrityError:
        return False
    await session.execute(
        insert(appointments).values(
            id=appointment_id,
            referral_id=referral_id,
            patient_ref=patient_ref,
            centre_id=candidate.centre_id,
            start=candidate.start,
            end=candidate.end,
            box=candidate.box,
            priority=priority,
            distance_km=candidate.distance_km,
            status="booked",
            created_at=now,
        )
    )
    return True


async def release(session: AsyncSession, appointment_id: str) -> None:
    await session.execute(delete(bookings).where(bookings.c.appointment_id == appointment_id))


async def centre_row(session: AsyncSession, centre_id: str) -> Any:
    return (await session.execute(select(centres).where(centres.c.id == centre_id))).first()


async def remember_origin(
    session: AsyncSession, referral_id: str, departement: str, commune_insee: str
) -> None:
    """Where the patient comes from, to place them again if their centre closes."""
    exists = await session.scalar(
        select(origins.c.referral_id).where(origins.c.referral_id == referral_id)
    )
    if exists is None:
        await session.execute(
            insert(origins).values(
                referral_id=referral_id, departement=departement, commune_insee=commune_insee
            )
        )


async def referral_origin(session: AsyncSession, referral_id: str) -> tuple[str, str]:
    row = (await session.execute(select(origins).where(origins.c.referral_id == referral_id))).one()
    return row.departement, row.commune_insee
