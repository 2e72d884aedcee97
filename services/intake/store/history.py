"""Every status a referral went through, for its referrer (and for the replay that
sets its current status: ``domain.status``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store import AnyRow
from services.intake.store.tables import status_history

_INSERT_HISTORY = insert(status_history)
_HISTORY = select(
    status_history.c.status,
    status_history.c.detail,
    status_history.c.at,
    status_history.c.event_id,
).where(status_history.c.referral_id == bindparam("referral_id"))
_HISTORY_BY_TIME = (
    select(status_history)
    .where(status_history.c.referral_id == bindparam("referral_id"))
    .order_by(status_history.c.at)
)


async def add_history(
    session: AsyncSession,
    *,
    referral_id: str,
    event_id: str,
    status: str,
    detail: dict[str, Any],
    at: datetime,
) -> None:
    await session.execute(
        _INSERT_HISTORY,
        {
            "referral_id": referral_id,
            "event_id": event_id,
            "status": status,
            "detail": detail,
            "at": at,
        },
    )


async def history(session: AsyncSession, referral_id: str) -> Sequence[AnyRow]:
    """Every entry of the referral's history (``status``, ``detail``, ``at``,
    ``event_id``), in no particular order: the replay orders them."""
    return (await session.execute(_HISTORY, {"referral_id": referral_id})).all()


async def history_by_time(session: AsyncSession, referral_id: str) -> Sequence[AnyRow]:
    """The referral's history as its referrer reads it, oldest first."""
    return (await session.execute(_HISTORY_BY_TIME, {"referral_id": referral_id})).all()
