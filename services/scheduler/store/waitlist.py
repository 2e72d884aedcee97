"""The waiting list: patients no slot could be found for, served as capacity
appears near them, most urgent first."""

from __future__ import annotations

from datetime import datetime
from math import cos, radians
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.centres import KM_PER_DEGREE
from services.scheduler.store.tables import waitlist, waitlist_entries
from shared.geo import haversine_km

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
    # Kept after the wait ends, for the ARS's history of the day.
    await session.execute(
        _INSERT_ENTRY,
        {"referral_id": referral_id, "departement": departement, "queued_at": queued_at},
    )


_INSERT_ENTRY = insert(waitlist_entries)


# A waiting patient now elsewhere: served from their new place, in its département.
_RELOCATE_WAITING = (
    update(waitlist)
    .where(waitlist.c.referral_id == bindparam("which"))
    .values(
        departement=bindparam("new_departement"),
        commune_insee=bindparam("new_commune"),
        lat=bindparam("new_lat"),
        lon=bindparam("new_lon"),
    )
)


async def relocate_waiting(
    session: AsyncSession,
    referral_id: str,
    departement: str,
    commune_insee: str,
    place: tuple[float, float],
) -> None:
    """A waiting patient's new place (none waiting: nothing changes)."""
    await session.execute(
        _RELOCATE_WAITING,
        {
            "which": referral_id,
            "new_departement": departement,
            "new_commune": commune_insee,
            "new_lat": place[0],
            "new_lon": place[1],
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


_WAITING_BY_PRIORITY = select(waitlist.c.departement, waitlist.c.priority, func.count()).group_by(
    waitlist.c.departement, waitlist.c.priority
)


async def waiting_by_priority(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Patients waiting per (département, priority)."""
    rows = (await session.execute(_WAITING_BY_PRIORITY)).all()
    return {(departement, priority): int(count) for departement, priority, count in rows}


async def waiting_by_departement(session: AsyncSession) -> dict[str, int]:
    rows = (await session.execute(_WAITING_BY_DEPARTEMENT)).all()
    return {departement: int(count) for departement, count in rows}
