"""Who moved an appointment, and why: a patient's own moves by their link are
counted from it, and their page says why a suspension or a regulator moved them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.bookings import AnyRow
from services.scheduler.store.tables import appointment_moves

_INSERT_MOVE = insert(appointment_moves)
_MOVES_BY = select(func.count()).where(
    appointment_moves.c.referral_id == bindparam("referral_id"),
    appointment_moves.c.moved_by == bindparam("by"),
)
_MOVED_INTO = select(appointment_moves.c.moved_by, appointment_moves.c.reason).where(
    appointment_moves.c.replaced_by == bindparam("appointment_id")
)


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
