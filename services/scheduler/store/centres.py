"""Centres as the ARS decides them, read as schedules: where they are, their hours,
boxes and capacity changes, the spatial prefilter of a booking, and their rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import date, datetime
from functools import cache, lru_cache
from math import cos, radians
from typing import Any, TypedDict

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.domain.centres import CentreSchedule, ScheduleChange
from services.scheduler.store.bookings import AnyRow
from services.scheduler.store.tables import capacity_changes, centres
from shared.events import OpeningPeriod
from shared.geo import haversine_km

KM_PER_DEGREE = 111.195  # of latitude, on the mean Earth radius


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

_CENTRE = select(centres).where(centres.c.id == bindparam("centre_id"))


async def centre_row(session: AsyncSession, centre_id: str) -> Any:
    return (await session.execute(_CENTRE, {"centre_id": centre_id})).first()


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


_CENTRES = select(centres).order_by(centres.c.departement, centres.c.id)
_CENTRES_OF = (
    select(centres)
    .where(centres.c.departement == bindparam("departement"))
    .order_by(centres.c.departement, centres.c.id)
)


async def centre_rows(session: AsyncSession, departement: str | None) -> Sequence[AnyRow]:
    """Every centre (of the département, if given), whatever its status, by
    département then id."""
    if departement is None:
        return (await session.execute(_CENTRES)).all()
    return (await session.execute(_CENTRES_OF, {"departement": departement})).all()
