"""What centres ask their ARS for (staff, from a date), read by the ARS."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime

from sqlalchemy import Integer, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.bookings import AnyRow
from services.scheduler.store.tables import reinforcements

_INSERT_REINFORCEMENT = insert(reinforcements)

_REINFORCEMENTS_IN = (
    select(reinforcements)
    .where(reinforcements.c.departement.in_(bindparam("departements", expanding=True)))
    .order_by(reinforcements.c.requested_at.desc())
    .limit(bindparam("limit", type_=Integer))
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


async def reinforcement_requests(
    session: AsyncSession, departements: Collection[str], limit: int
) -> Sequence[AnyRow]:
    """What the centres of these départements (an ARS's region) asked the ARS for,
    newest first."""
    if not departements:
        return []
    params = {"departements": sorted(departements), "limit": limit}
    return (await session.execute(_REINFORCEMENTS_IN, params)).all()
