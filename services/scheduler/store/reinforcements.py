"""What centres ask their ARS for (staff, from a date), read by the ARS, and where each
request stands: acknowledged, granted or declined by the ARS, raised again to it for
want of an answer."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime

from sqlalchemy import Integer, bindparam, insert, select, update
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


_REINFORCEMENT = select(reinforcements).where(reinforcements.c.id == bindparam("request_id"))

_OF_CENTRE = (
    select(reinforcements)
    .where(reinforcements.c.centre_id == bindparam("centre_id"))
    .order_by(reinforcements.c.requested_at.desc())
    .limit(bindparam("limit", type_=Integer))
)

# Acknowledged only while nothing was said of it; granted or declined while unanswered
# (an answer stands: a second one is not applied).
_ACKNOWLEDGE = (
    update(reinforcements)
    .where(reinforcements.c.id == bindparam("request_id"))
    .where(reinforcements.c.state == "requested")
    .values(state="acknowledged", acknowledged_at=bindparam("at"), answer=bindparam("said"))
)
_ANSWER = (
    update(reinforcements)
    .where(reinforcements.c.id == bindparam("request_id"))
    .where(reinforcements.c.state.in_(("requested", "acknowledged")))
    .values(
        state=bindparam("new_state"),
        answered_at=bindparam("at"),
        granted_boxes=bindparam("boxes"),
        granted_staff=bindparam("staff"),
        granted_hours=bindparam("hours"),
        answer=bindparam("said"),
    )
)

# Not a word from the ARS since before ``before``, and not raised again yet.
_UNANSWERED = (
    select(reinforcements)
    .where(reinforcements.c.state == "requested")
    .where(reinforcements.c.raised_again_at.is_(None))
    .where(reinforcements.c.requested_at <= bindparam("before"))
    .order_by(reinforcements.c.requested_at)
    .limit(bindparam("limit", type_=Integer))
)
# Once per request, whichever replica gets there first.
_RAISED_AGAIN = (
    update(reinforcements)
    .where(reinforcements.c.id == bindparam("request_id"))
    .where(reinforcements.c.raised_again_at.is_(None))
    .values(raised_again_at=bindparam("at"))
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


async def reinforcement(session: AsyncSession, request_id: str) -> AnyRow | None:
    return (await session.execute(_REINFORCEMENT, {"request_id": request_id})).first()


async def centre_reinforcements(
    session: AsyncSession, centre_id: str, limit: int
) -> Sequence[AnyRow]:
    """What one centre asked its ARS for, and where each request stands, newest first."""
    params = {"centre_id": centre_id, "limit": limit}
    return (await session.execute(_OF_CENTRE, params)).all()


async def acknowledge_reinforcement(
    session: AsyncSession, request_id: str, at: datetime, note: str
) -> bool:
    """True if it was acknowledged now (False: already acknowledged or answered)."""
    params = {"request_id": request_id, "at": at, "said": note or None}
    result = await session.execute(_ACKNOWLEDGE, params)
    return bool(getattr(result, "rowcount", 0))


async def answer_reinforcement(
    session: AsyncSession,
    request_id: str,
    *,
    state: str,
    at: datetime,
    answer: str,
    boxes: int | None = None,
    staff: int | None = None,
    hours: int | None = None,
) -> bool:
    """Granted or declined; True if applied now (False: answered already)."""
    params = {
        "request_id": request_id,
        "new_state": state,
        "at": at,
        "said": answer or None,
        "boxes": boxes,
        "staff": staff,
        "hours": hours,
    }
    result = await session.execute(_ANSWER, params)
    return bool(getattr(result, "rowcount", 0))


async def unanswered_reinforcements(
    session: AsyncSession, before: datetime, limit: int = 100
) -> Sequence[AnyRow]:
    """Requests still unanswered, made before ``before``, not raised again yet."""
    return (await session.execute(_UNANSWERED, {"before": before, "limit": limit})).all()


async def mark_raised_again(session: AsyncSession, request_id: str, at: datetime) -> bool:
    """True for the one caller that raises this request again."""
    result = await session.execute(_RAISED_AGAIN, {"request_id": request_id, "at": at})
    return bool(getattr(result, "rowcount", 0))
