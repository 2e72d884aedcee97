"""What the saturation forecast reads (issue 31): the arrivals of oriented patients per
département, the waiting list per priority, the centres in reserve."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.tables import arrivals, centres, waitlist
from shared.db import as_utc

_INSERT_ARRIVAL = insert(arrivals)
_ARRIVALS = (
    select(arrivals.c.arrived_at, arrivals.c.priority)
    .where(
        arrivals.c.departement == bindparam("departement"),
        arrivals.c.arrived_at >= bindparam("since"),
    )
    .order_by(arrivals.c.arrived_at)
)
_DEMAND_POINT = select(func.avg(arrivals.c.lat), func.avg(arrivals.c.lon)).where(
    arrivals.c.departement == bindparam("departement"),
    arrivals.c.arrived_at >= bindparam("since"),
)
_DEPARTEMENTS = (
    select(arrivals.c.departement)
    .where(arrivals.c.arrived_at >= bindparam("since"))
    .union(select(centres.c.departement).where(centres.c.status == "active"))
)
_FORGET = delete(arrivals).where(arrivals.c.arrived_at < bindparam("before"))
_WAITING = (
    select(waitlist.c.priority, func.count())
    .where(waitlist.c.departement == bindparam("departement"))
    .group_by(waitlist.c.priority)
)
# Declared and not active: suspended (an activation brings it back with its boxes).
_RESERVE = select(centres.c.id, centres.c.lat, centres.c.lon, centres.c.boxes).where(
    centres.c.departement == bindparam("departement"), centres.c.status == "suspended"
)


async def record_arrival(
    session: AsyncSession, departement: str, priority: str, lat: float, lon: float, at: datetime
) -> None:
    await session.execute(
        _INSERT_ARRIVAL,
        {
            "departement": departement,
            "priority": priority,
            "lat": lat,
            "lon": lon,
            "arrived_at": at,
        },
    )


async def arrivals_since(
    session: AsyncSession, departement: str, since: datetime
) -> list[tuple[datetime, str]]:
    """(when, priority) of the département's arrivals since ``since``, oldest first."""
    rows = await session.execute(_ARRIVALS, {"departement": departement, "since": since})
    return [(as_utc(at), str(priority)) for at, priority in rows]


async def demand_point(
    session: AsyncSession, departement: str, since: datetime
) -> tuple[float, float] | None:
    """The mean point of the département's arrivals since ``since`` (None: none)."""
    row = (await session.execute(_DEMAND_POINT, {"departement": departement, "since": since})).one()
    return None if row[0] is None else (float(row[0]), float(row[1]))


async def forecast_departements(session: AsyncSession, since: datetime) -> list[str]:
    """The départements with arrivals since ``since`` or an active centre."""
    return sorted({str(d) for (d,) in await session.execute(_DEPARTEMENTS, {"since": since})})


async def forget_arrivals(session: AsyncSession, before: datetime) -> None:
    await session.execute(_FORGET, {"before": before})


async def waiting_in(session: AsyncSession, departement: str) -> dict[str, int]:
    """The département's waiting list, per priority."""
    rows = await session.execute(_WAITING, {"departement": departement})
    return {str(priority): int(count) for priority, count in rows}


async def reserve_centres(session: AsyncSession, departement: str) -> Sequence[Any]:
    """The département's centres declared and not active (suspended): id, lat, lon, boxes."""
    return (await session.execute(_RESERVE, {"departement": departement})).all()
