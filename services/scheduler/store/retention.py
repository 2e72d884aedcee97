"""The purge of regulations' reasons past their retention (issue 34): one batch per
call, in the caller's transaction (``domain.retention`` says which)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from services.scheduler.store.tables import appointments, regulations, waitlist

_CUTOFF: BindParameter[Any] = bindparam("cutoff")
_DUE = (
    select(regulations.c.referral_id)
    .where(
        regulations.c.regulated_at <= _CUTOFF,
        ~exists().where(waitlist.c.referral_id == regulations.c.referral_id),
        ~exists().where(
            appointments.c.referral_id == regulations.c.referral_id,
            or_(appointments.c.end > _CUTOFF, appointments.c.created_at > _CUTOFF),
        ),
    )
    .order_by(regulations.c.referral_id)
    .limit(bindparam("limit"))
)
_DELETE = delete(regulations).where(regulations.c.referral_id.in_(bindparam("ids", expanding=True)))


async def clinical_due(session: AsyncSession, cutoff: datetime, limit: int) -> list[str]:
    """Referrals regulated, served or gone at ``cutoff`` or before, off the waiting list."""
    return list((await session.scalars(_DUE, {"cutoff": cutoff, "limit": limit})).all())


async def delete_regulations(session: AsyncSession, referral_ids: Sequence[str]) -> int:
    await session.execute(_DELETE, {"ids": list(referral_ids)})
    return len(referral_ids)
