"""A département's load over the next hours, and the ARS's alerts (saturation, a
waiting list): raised once while their cause lasts, cleared when it ends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.domain.slots import capacity_between
from services.scheduler.store.bookings import AnyRow
from services.scheduler.store.centres import active_schedules
from services.scheduler.store.tables import alerts, bookings, centres


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


_ALERTS = select(alerts)


async def raised_alerts(session: AsyncSession) -> Sequence[AnyRow]:
    return (await session.execute(_ALERTS)).all()
