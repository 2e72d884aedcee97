"""The scheduler's database adapter: centres as schedules, booked slots, bookings
protected by the database, and the waiting list."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from math import cos, radians
from typing import Any, TypedDict

from sqlalchemy import (
    Integer,
    Row,
    Select,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.domain.assignment import Candidate
from services.scheduler.domain.centres import CentreSchedule, ScheduleChange
from services.scheduler.domain.policy import Demand
from services.scheduler.domain.slots import capacity_between
from services.scheduler.tables import (
    alerts,
    appointment_moves,
    appointments,
    bookings,
    capacity_changes,
    centres,
    consultation_outcomes,
    origins,
    outcome_corrections,
    reinforcements,
    waitlist,
)
from shared.db import as_utc
from shared.events import OpeningPeriod
from shared.geo import haversine_km

KM_PER_DEGREE = 111.195  # of latitude, on the mean Earth radius

# Each statement is built once, at import (or once per shape, ``_schedules``), with its
# parameters bound per call: a message costs the execution, not the construction, and
# SQLAlchemy's compiled cache keys on the one statement object. Lists go through
# expanding parameters (``IN (...)`` rendered per call from one statement).

# A row of any shape: the callers read its columns by name.
AnyRow = Row[*tuple[Any, ...]]


def _hours(raw: Any) -> tuple[OpeningPeriod, ...]:
    # Every booking reads its candidate centres' hours: the same few weeks of hours,
    # validated once per process rather than seven periods per centre per booking.
    try:
        key = tuple((p["weekday"], p["opens"], p["closes"]) for p in raw)
    except (KeyError, TypeError):
        return tuple(OpeningPeriod.model_validate(p) for p in raw)
    if any(len(p) != 3 for p in raw):
        return tuple(OpeningPeriod.model_validate(p) for p in raw)
    return _periods(key)


@lru_cache(maxsize=1024)
def _periods(key: tuple[tuple[Any, Any, Any], ...]) -> tuple[OpeningPeriod, ...]:
    return tuple(OpeningPeriod(weekday=w, opens=o, closes=c) for w, o, c in key)


@cache
def _schedules(any_status: bool, by_departement: bool, by_ids: bool) -> Select[*tuple[Any, ...]]:
    """The centres' query for one shape of ``active_schedules``'s filters (eight in all)."""
    query = select(centres)
    if not any_status:
        query = query.where(centres.c.status == "active")
    if by_departement:
        query = query.where(centres.c.departement == bindparam("departement"))
    if by_ids:
        query = query.where(centres.c.id.in_(bindparam("ids", expanding=True)))
    return query.order_by(centres.c.id)


_CAPACITY_CHANGES = (
    select(capacity_changes)
    .where(capacity_changes.c.centre_id.in_(bindparam("ids", expanding=True)))
    .order_by(capacity_changes.c.recorded_at)
)


async def active_schedules(
    session: AsyncSession,
    *,
    departement: str | None = None,
    ids: Collection[str] | None = None,
    any_status: bool = False,
) -> list[CentreSchedule]:
    """The schedules of the active centres (``any_status``: of every centre, for what
    the ARS reads: a suspended centre's boxes are still the ones it was last given)."""
    query = _schedules(any_status, departement is not None, ids is not None)
    params: dict[str, Any] = {}
    if departement is not None:
        params["departement"] = departement
    if ids is not None:
        params["ids"] = list(ids)
    rows = (await session.execute(query, params)).all()
    if not rows:
        return []
    changes: dict[str, list[ScheduleChange]] = defaultdict(list)
    change_rows = await session.execute(_CAPACITY_CHANGES, {"ids": [r.id for r in rows]})
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


_ACTIVE_IN_BOX = select(centres.c.id, centres.c.lat, centres.c.lon).where(
    centres.c.status == "active",
    centres.c.lat.between(bindparam("lat_min"), bindparam("lat_max")),
    centres.c.lon.between(bindparam("lon_min"), bindparam("lon_max")),
)


async def nearby_centre_ids(
    session: AsyncSession, lat: float, lon: float, *, k: int, max_km: float
) -> list[tuple[str, float]]:
    """The ``k`` active centres nearest (lat, lon) within ``max_km``, nearest first.

    The spatial prefilter: a bounding box on the indexed (lat, lon) columns, widened
    until it holds ``k`` centres or reaches ``max_km``, so that the cost depends on the
    centres near the patient, not on how many there are in France. Doubled, not
    widened to ``max_km`` at once: that spares a round trip where centres are few, but
    where they are dense the wider box reads every centre in it (bench/slot_search.py,
    10,000 centres: 36.6 ms a patient doubled, 41.6 ms at once).
    """
    radius = min(20.0, max_km)
    while True:
        dlat = radius / KM_PER_DEGREE
        dlon = radius / (KM_PER_DEGREE * max(0.1, cos(radians(abs(lat) + dlat))))
        rows = (
            await session.execute(
                _ACTIVE_IN_BOX,
                {
                    "lat_min": lat - dlat,
                    "lat_max": lat + dlat,
                    "lon_min": lon - dlon,
                    "lon_max": lon + dlon,
                },
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
        await session.execute(_LOCK_CENTRES, {"ids": sorted(centre_ids)})


_LOCK_CENTRES = (
    select(centres.c.id)
    .where(centres.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(centres.c.id)
    .with_for_update()
)
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
_CENTRE = select(centres).where(centres.c.id == bindparam("centre_id"))
_ORIGIN_KNOWN = select(origins.c.referral_id).where(
    origins.c.referral_id == bindparam("referral_id")
)
_INSERT_ORIGIN = insert(origins)
_ORIGIN = select(origins.c.departement, origins.c.commune_insee).where(
    origins.c.referral_id == bindparam("referral_id")
)


async def release(session: AsyncSession, appointment_id: str) -> None:
    await session.execute(_RELEASE, {"appointment_id": appointment_id})


async def centre_row(session: AsyncSession, centre_id: str) -> Any:
    return (await session.execute(_CENTRE, {"centre_id": centre_id})).first()


async def remember_origin(
    session: AsyncSession, referral_id: str, departement: str, commune_insee: str
) -> None:
    """Where the patient comes from, to place them again if their centre closes."""
    exists = await session.scalar(_ORIGIN_KNOWN, {"referral_id": referral_id})
    if exists is None:
        await session.execute(
            _INSERT_ORIGIN,
            {
                "referral_id": referral_id,
                "departement": departement,
                "commune_insee": commune_insee,
            },
        )


async def referral_origin(session: AsyncSession, referral_id: str) -> tuple[str, str]:
    row = (await session.execute(_ORIGIN, {"referral_id": referral_id})).one()
    return row.departement, row.commune_insee


async def referral_departement(session: AsyncSession, referral_id: str) -> str | None:
    """The patient's département as regulation gave it, or None for a referral never
    oriented here."""
    row = (await session.execute(_ORIGIN, {"referral_id": referral_id})).first()
    return None if row is None else str(row.departement)


_WAITING_IN_BOX = (
    select(waitlist)
    .where(
        waitlist.c.lat.between(bindparam("lat_min"), bindparam("lat_max")),
        waitlist.c.lon.between(bindparam("lon_min"), bindparam("lon_max")),
    )
    .order_by(waitlist.c.priority_rank, waitlist.c.deadline, waitlist.c.queued_at)
)


async def waiting_near(session: AsyncSession, lat: float, lon: float, max_km: float) -> list[Any]:
    """Patients waiting within ``max_km``, most urgent first."""
    dlat = max_km / KM_PER_DEGREE
    dlon = max_km / (KM_PER_DEGREE * max(0.1, cos(radians(abs(lat) + dlat))))
    rows = (
        await session.execute(
            _WAITING_IN_BOX,
            {
                "lat_min": lat - dlat,
                "lat_max": lat + dlat,
                "lon_min": lon - dlon,
                "lon_max": lon + dlon,
            },
        )
    ).all()
    return [r for r in rows if haversine_km(lat, lon, r.lat, r.lon) <= max_km]


@dataclass(frozen=True)
class Load:
    capacity: int
    booked: int
    centres: int
    boxes: int


_DEPARTEMENT_BOOKED = (
    select(func.count())
    .select_from(bookings)
    .join(centres, centres.c.id == bookings.c.centre_id)
    .where(
        centres.c.departement == bindparam("departement"),
        centres.c.status == "active",
        bookings.c.start >= bindparam("start"),
        bookings.c.start < bindparam("end"),
    )
)


async def departement_load(
    session: AsyncSession, departement: str, start: datetime, hours: int = 24
) -> Load:
    """Places and bookings at a département's active centres in the next ``hours``."""
    end = start + timedelta(hours=hours)
    schedules = await active_schedules(session, departement=departement)
    capacity = sum(capacity_between(s, start, end) for s in schedules)
    booked = await session.scalar(
        _DEPARTEMENT_BOOKED, {"departement": departement, "start": start, "end": end}
    )
    return Load(capacity, int(booked or 0), len(schedules), sum(s.boxes for s in schedules))


_ALERT = select(alerts.c.sent_at).where(
    alerts.c.departement == bindparam("departement"), alerts.c.kind == bindparam("kind")
)
_INSERT_ALERT = insert(alerts)
_CLEAR_ALERT = delete(alerts).where(
    alerts.c.departement == bindparam("departement"), alerts.c.kind == bindparam("kind")
)


async def alert_active(session: AsyncSession, departement: str, kind: str) -> bool:
    """An alert of this cause is raised for the département and not cleared yet."""
    found = await session.scalar(_ALERT, {"departement": departement, "kind": kind})
    return found is not None


async def record_alert(session: AsyncSession, departement: str, kind: str, now: datetime) -> None:
    await session.execute(_INSERT_ALERT, {"departement": departement, "kind": kind, "sent_at": now})


async def clear_alert(session: AsyncSession, departement: str, kind: str) -> bool:
    """The alert's cause ended: True if one was raised (and is now cleared)."""
    deleted = await session.execute(_CLEAR_ALERT, {"departement": departement, "kind": kind})
    return bool(deleted.rowcount)  # type: ignore[attr-defined]


# -- centres as the ARS decides them ------------------------------------------------


class CentreFields(TypedDict):
    """A centre's columns as its activation sets them (all but ``id``)."""

    name: str
    kind: str
    commune_insee: str
    departement: str
    lat: float
    lon: float
    address: str | None
    opening_hours: list[dict[str, Any]]
    boxes: int
    consultation_minutes: int
    first_day: date
    status: str
    updated_at: datetime


_INSERT_CENTRE = insert(centres)
# The bound names differ from the columns': an UPDATE reserves the column names for SET.
_UPDATE_CENTRE = (
    update(centres)
    .where(centres.c.id == bindparam("centre_id"))
    .values({name: bindparam(f"new_{name}") for name in CentreFields.__annotations__})
)
_CENTRE_STATUS = (
    update(centres)
    .where(centres.c.id == bindparam("centre_id"))
    .values(status=bindparam("new_status"), updated_at=bindparam("new_updated_at"))
)
_INSERT_CAPACITY_CHANGE = insert(capacity_changes)
_INSERT_REINFORCEMENT = insert(reinforcements)


async def add_centre(session: AsyncSession, centre_id: str, fields: CentreFields) -> None:
    await session.execute(_INSERT_CENTRE, {"id": centre_id, **fields})


async def update_centre(session: AsyncSession, centre_id: str, fields: CentreFields) -> None:
    await session.execute(
        _UPDATE_CENTRE,
        {"centre_id": centre_id, **{f"new_{name}": value for name, value in fields.items()}},
    )


async def set_centre_status(
    session: AsyncSession, centre_id: str, status: str, now: datetime
) -> None:
    await session.execute(
        _CENTRE_STATUS, {"centre_id": centre_id, "new_status": status, "new_updated_at": now}
    )


async def add_capacity_change(
    session: AsyncSession,
    *,
    event_id: str,
    centre_id: str,
    from_date: date,
    boxes: int | None,
    opening_hours: list[dict[str, Any]] | None,
    consultation_minutes: int | None,
    recorded_at: datetime,
) -> None:
    await session.execute(
        _INSERT_CAPACITY_CHANGE,
        {
            "event_id": event_id,
            "centre_id": centre_id,
            "from_date": from_date,
            "boxes": boxes,
            "opening_hours": opening_hours,
            "consultation_minutes": consultation_minutes,
            "recorded_at": recorded_at,
        },
    )


async def add_reinforcement(
    session: AsyncSession,
    *,
    request_id: str,
    centre_id: str,
    departement: str,
    count: int,
    profession: str,
    from_date: date,
    note: str,
    requested_at: datetime,
) -> None:
    await session.execute(
        _INSERT_REINFORCEMENT,
        {
            "id": request_id,
            "centre_id": centre_id,
            "departement": departement,
            "count": count,
            "profession": profession,
            "from_date": from_date,
            "note": note,
            "requested_at": requested_at,
        },
    )


# -- appointments -------------------------------------------------------------------

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


# -- the waiting list ---------------------------------------------------------------

_INSERT_WAITING = insert(waitlist)
_LEAVE_WAITLIST = delete(waitlist).where(waitlist.c.referral_id == bindparam("referral_id"))
_WAITING_DEPARTEMENT = select(waitlist.c.departement).where(
    waitlist.c.referral_id == bindparam("referral_id")
)
_WAITING_COUNT = (
    select(func.count())
    .select_from(waitlist)
    .where(waitlist.c.departement == bindparam("departement"))
)
_WAITING_BY_DEPARTEMENT = select(waitlist.c.departement, func.count()).group_by(
    waitlist.c.departement
)


async def put_on_waitlist(
    session: AsyncSession,
    *,
    referral_id: str,
    patient_ref: str,
    priority: str,
    priority_rank: int,
    deadline: datetime,
    departement: str,
    commune_insee: str,
    lat: float,
    lon: float,
    test_eligible: bool,
    queued_at: datetime,
) -> None:
    """The patient on the waiting list, in place of any earlier entry of theirs."""
    await session.execute(_LEAVE_WAITLIST, {"referral_id": referral_id})
    await session.execute(
        _INSERT_WAITING,
        {
            "referral_id": referral_id,
            "patient_ref": patient_ref,
            "priority": priority,
            "priority_rank": priority_rank,
            "deadline": deadline,
            "departement": departement,
            "commune_insee": commune_insee,
            "lat": lat,
            "lon": lon,
            "test_eligible": test_eligible,
            "queued_at": queued_at,
        },
    )


async def leave_waitlist(session: AsyncSession, referral_id: str) -> None:
    await session.execute(_LEAVE_WAITLIST, {"referral_id": referral_id})


async def hold_waiting(session: AsyncSession, referral_id: str) -> bool:
    """Whether the patient is still on the waiting list, their entry then held until
    the transaction ends (a PostgreSQL row lock).

    Whoever serves a waiting patient holds their entry first. Another replica's
    transaction serving them at the same time (two centres activated side by side)
    waits on it, and once the first commits, finds the entry gone: it books nobody
    twice. SQLite has one writer: there is nothing to wait for."""
    found = await session.scalar(_HOLD_WAITING, {"referral_id": referral_id})
    return found is not None


_HOLD_WAITING = (
    select(waitlist.c.referral_id)
    .where(waitlist.c.referral_id == bindparam("referral_id"))
    .with_for_update()
)


async def waiting_departement(session: AsyncSession, referral_id: str) -> str | None:
    """The département where the referral waits, or None when it does not wait."""
    found: str | None = await session.scalar(_WAITING_DEPARTEMENT, {"referral_id": referral_id})
    return found


async def waiting_count(session: AsyncSession, departement: str) -> int:
    count = await session.scalar(_WAITING_COUNT, {"departement": departement})
    return int(count or 0)


async def waiting_by_departement(session: AsyncSession) -> dict[str, int]:
    rows = (await session.execute(_WAITING_BY_DEPARTEMENT)).all()
    return {departement: int(count) for departement, count in rows}


# -- what the ARS reads -------------------------------------------------------------

_CENTRES = select(centres).order_by(centres.c.departement, centres.c.id)
_CENTRES_OF = (
    select(centres)
    .where(centres.c.departement == bindparam("departement"))
    .order_by(centres.c.departement, centres.c.id)
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
_REINFORCEMENTS_IN = (
    select(reinforcements)
    .where(reinforcements.c.departement.in_(bindparam("departements", expanding=True)))
    .order_by(reinforcements.c.requested_at.desc())
    .limit(bindparam("limit", type_=Integer))
)
_ALERTS = select(alerts)


async def centre_rows(session: AsyncSession, departement: str | None) -> Sequence[AnyRow]:
    """Every centre (of the département, if given), whatever its status, by
    département then id."""
    if departement is None:
        return (await session.execute(_CENTRES)).all()
    return (await session.execute(_CENTRES_OF, {"departement": departement})).all()


async def centre_booked(
    session: AsyncSession, centre_id: str, start: datetime, end: datetime
) -> int:
    """Slots booked at the centre starting in [start, end)."""
    count = await session.scalar(
        _CENTRE_BOOKED, {"centre_id": centre_id, "start": start, "end": end}
    )
    return int(count or 0)


async def reinforcement_requests(
    session: AsyncSession, departements: Collection[str], limit: int
) -> Sequence[AnyRow]:
    """What the centres of these départements (an ARS's region) asked the ARS for,
    newest first."""
    if not departements:
        return []
    params = {"departements": sorted(departements), "limit": limit}
    return (await session.execute(_REINFORCEMENTS_IN, params)).all()


async def raised_alerts(session: AsyncSession) -> Sequence[AnyRow]:
    return (await session.execute(_ALERTS)).all()


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


# -- moves (who moved an appointment, and why) ---------------------------------------

_APPOINTMENT = select(appointments).where(appointments.c.id == bindparam("appointment_id"))
_APPOINTMENT_LOCKED = _APPOINTMENT.with_for_update()
_INSERT_MOVE = insert(appointment_moves)
_MOVES_BY = select(func.count()).where(
    appointment_moves.c.referral_id == bindparam("referral_id"),
    appointment_moves.c.moved_by == bindparam("by"),
)
_MOVED_INTO = select(appointment_moves.c.moved_by, appointment_moves.c.reason).where(
    appointment_moves.c.replaced_by == bindparam("appointment_id")
)


async def appointment(
    session: AsyncSession, appointment_id: str, *, lock: bool = False
) -> AnyRow | None:
    """The appointment (every column), held until the transaction ends when ``lock``
    (PostgreSQL: two requests on one appointment wait for each other)."""
    query = _APPOINTMENT_LOCKED if lock else _APPOINTMENT
    return (await session.execute(query, {"appointment_id": appointment_id})).first()


async def record_move(
    session: AsyncSession,
    *,
    old: Any,
    replaced_by: str,
    by: str,
    reason: str,
    now: datetime,
) -> None:
    """``old`` (an appointment's row) replaced by ``replaced_by``, moved by ``by``."""
    await session.execute(
        _INSERT_MOVE,
        {
            "appointment_id": old.id,
            "referral_id": old.referral_id,
            "replaced_by": replaced_by,
            "moved_by": by,
            "reason": reason[:2000],
            "moved_at": now,
        },
    )


async def moves_by(session: AsyncSession, referral_id: str, by: str) -> int:
    """How many times the referral's appointment was moved by ``by`` (``patient``)."""
    count = await session.scalar(_MOVES_BY, {"referral_id": referral_id, "by": by})
    return int(count or 0)


async def moved_into(session: AsyncSession, appointment_id: str) -> AnyRow | None:
    """Who moved the patient into this appointment, and why (``moved_by``, ``reason``);
    None when it replaced nothing."""
    return (await session.execute(_MOVED_INTO, {"appointment_id": appointment_id})).first()


# -- what centres record of their consultations (issue 27) ---------------------------

_REPORTED_APPOINTMENT = (
    select(appointments).where(appointments.c.id == bindparam("appointment_id")).with_for_update()
)
_OUTCOME = select(consultation_outcomes).where(
    consultation_outcomes.c.appointment_id == bindparam("appointment_id")
)
_INSERT_OUTCOME = insert(consultation_outcomes)
_DELETE_OUTCOME = delete(consultation_outcomes).where(
    consultation_outcomes.c.appointment_id == bindparam("appointment_id")
)
_SET_OUTCOME = (
    update(consultation_outcomes)
    .where(consultation_outcomes.c.appointment_id == bindparam("outcome_of"))
    .values(outcome=bindparam("new_outcome"))
)
_INSERT_CORRECTION = insert(outcome_corrections)


async def reported_appointment(session: AsyncSession, appointment_id: str) -> AnyRow | None:
    """The appointment a centre reports on (every column), locked until the transaction
    ends on PostgreSQL: two reports on one appointment, at two replicas, apply in turn."""
    found = await session.execute(_REPORTED_APPOINTMENT, {"appointment_id": appointment_id})
    return found.first()


async def consultation_outcome(session: AsyncSession, appointment_id: str) -> AnyRow | None:
    """The outcome recorded for the appointment (``outcome``, ``recorded_at``,
    ``recorded_by``), or None."""
    return (await session.execute(_OUTCOME, {"appointment_id": appointment_id})).first()


async def record_outcome(
    session: AsyncSession, appointment_id: str, outcome: str, recorded_at: datetime, by: str
) -> None:
    """The outcome recorded now (in place of one recorded before an escalation: the
    window of its correction starts again)."""
    await session.execute(_DELETE_OUTCOME, {"appointment_id": appointment_id})
    await session.execute(
        _INSERT_OUTCOME,
        {
            "appointment_id": appointment_id,
            "outcome": outcome,
            "recorded_at": recorded_at,
            "recorded_by": by[:128],
        },
    )


async def correct_outcome(
    session: AsyncSession,
    *,
    correction_id: str,
    appointment: AnyRow,
    from_outcome: str,
    to_outcome: str,
    actor: str,
    sender_user: str,
    via: str | None,
    reason: str,
    corrected_at: datetime,
) -> None:
    """The outcome that stands changed, and the correction kept in the audit trail."""
    await session.execute(_SET_OUTCOME, {"outcome_of": appointment.id, "new_outcome": to_outcome})
    await session.execute(
        _INSERT_CORRECTION,
        {
            "id": correction_id,
            "appointment_id": appointment.id,
            "referral_id": appointment.referral_id,
            "centre_id": appointment.centre_id,
            "from_outcome": from_outcome,
            "to_outcome": to_outcome,
            "actor": actor[:128],
            "sender_user": sender_user[:128],
            "via": via[:128] if via else None,
            "reason": reason[:500],
            "corrected_at": corrected_at,
        },
    )


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
