"""The scheduler's database adapter: centres as schedules, booked slots, bookings
protected by the database, and the waiting list."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import cos, radians
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.domain.assignment import Candidate
from services.scheduler.domain.centres import CentreSchedule, ScheduleChange
from services.scheduler.domain.slots import capacity_between
from services.scheduler.tables import (
    alerts,
    appointments,
    bookings,
    capacity_changes,
    centres,
    origins,
    waitlist,
)
from shared.db import as_utc
from shared.events import OpeningPeriod
from shared.geo import haversine_km

KM_PER_DEGREE = 111.195  # of latitude, on the mean Earth radius


def _hours(raw: Any) -> tuple[OpeningPeriod, ...]:
    return tuple(OpeningPeriod.model_validate(p) for p in raw)


async def active_schedules(
    session: AsyncSession,
    *,
    departement: str | None = None,
    ids: Collection[str] | None = None,
    any_status: bool = False,
) -> list[CentreSchedule]:
    """The schedules of the active centres (``any_status``: of every centre, for what
    the ARS reads: a suspended centre's boxes are still the ones it was last given)."""
    query = select(centres) if any_status else select(centres).where(centres.c.status == "active")
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


async def nearby_centre_ids(
    session: AsyncSession, lat: float, lon: float, *, k: int, max_km: float
) -> list[tuple[str, float]]:
    """The ``k`` active centres nearest (lat, lon) within ``max_km``, nearest first.

    The spatial prefilter: a bounding box on the indexed (lat, lon) columns, widened
    until it holds ``k`` centres or reaches ``max_km``, so that the cost depends on the
    centres near the patient, not on how many there are in France.
    """
    radius = min(20.0, max_km)
    while True:
        dlat = radius / KM_PER_DEGREE
        dlon = radius / (KM_PER_DEGREE * max(0.1, cos(radians(abs(lat) + dlat))))
        rows = (
            await session.execute(
                select(centres.c.id, centres.c.lat, centres.c.lon).where(
                    centres.c.status == "active",
                    centres.c.lat.between(lat - dlat, lat + dlat),
                    centres.c.lon.between(lon - dlon, lon + dlon),
                )
            )
        ).all()
        found = sorted(
            (d, r.id) for r in rows if (d := haversine_km(lat, lon, r.lat, r.lon)) <= radius
        )
        if len(found) >= k or radius >= max_km:
            return [(centre_id, d) for d, centre_id in found[:k]]
        radius = min(max_km, radius * 2)


async def lock_centres(session: AsyncSession, centre_ids: Sequence[str]) -> None:
    """Serialise bookings at these centres across scheduler replicas (PostgreSQL row
    locks, in id order so that two replicas never deadlock). The unique key on
    (centre, start, box) stays the last word; this only spares wasted retries."""
    if session.get_bind().dialect.name == "postgresql" and centre_ids:
        await session.execute(
            select(centres.c.id)
            .where(centres.c.id.in_(sorted(centre_ids)))
            .order_by(centres.c.id)
            .with_for_update()
        )


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
    test_eligible: bool = False,
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
            test_eligible=test_eligible,
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


async def waiting_near(session: AsyncSession, lat: float, lon: float, max_km: float) -> list[Any]:
    """Patients waiting within ``max_km``, most urgent first."""
    dlat = max_km / KM_PER_DEGREE
    dlon = max_km / (KM_PER_DEGREE * max(0.1, cos(radians(abs(lat) + dlat))))
    rows = (
        await session.execute(
            select(waitlist)
            .where(
                waitlist.c.lat.between(lat - dlat, lat + dlat),
                waitlist.c.lon.between(lon - dlon, lon + dlon),
            )
            .order_by(waitlist.c.priority_rank, waitlist.c.deadline, waitlist.c.queued_at)
        )
    ).all()
    return [r for r in rows if haversine_km(lat, lon, r.lat, r.lon) <= max_km]


@dataclass(frozen=True)
class Load:
    capacity: int
    booked: int
    centres: int
    boxes: int


async def departement_load(
    session: AsyncSession, departement: str, start: datetime, hours: int = 24
) -> Load:
    """Places and bookings at a département's active centres in the next ``hours``."""
    end = start + timedelta(hours=hours)
    schedules = await active_schedules(session, departement=departement)
    capacity = sum(capacity_between(s, start, end) for s in schedules)
    booked = await session.scalar(
        select(func.count())
        .select_from(bookings)
        .join(centres, centres.c.id == bookings.c.centre_id)
        .where(
            centres.c.departement == departement,
            centres.c.status == "active",
            bookings.c.start >= start,
            bookings.c.start < end,
        )
    )
    return Load(capacity, int(booked or 0), len(schedules), sum(s.boxes for s in schedules))


async def alert_active(session: AsyncSession, departement: str, kind: str) -> bool:
    """An alert of this cause is raised for the département and not cleared yet."""
    found = await session.scalar(
        select(alerts.c.sent_at).where(alerts.c.departement == departement, alerts.c.kind == kind)
    )
    return found is not None


async def record_alert(session: AsyncSession, departement: str, kind: str, now: datetime) -> None:
    await session.execute(insert(alerts).values(departement=departement, kind=kind, sent_at=now))


async def clear_alert(session: AsyncSession, departement: str, kind: str) -> bool:
    """The alert's cause ended: True if one was raised (and is now cleared)."""
    deleted = await session.execute(
        delete(alerts).where(alerts.c.departement == departement, alerts.c.kind == kind)
    )
    return bool(deleted.rowcount)  # type: ignore[attr-defined]
