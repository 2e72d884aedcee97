"""Referrals whose patient restricted their processing (issue 34): who asked it when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store import AnyRow
from services.intake.store.tables import restrictions

_ONE = select(restrictions).where(restrictions.c.referral_id == bindparam("referral_id"))
_ADD = insert(restrictions)


async def restriction(session: AsyncSession, referral_id: str) -> AnyRow | None:
    return (await session.execute(_ONE, {"referral_id": referral_id})).first()


async def restrict(session: AsyncSession, referral_id: str, at: datetime, by: str) -> bool:
    """Record the restriction; False when the referral was restricted already."""
    if await restriction(session, referral_id) is not None:
        return False
    await session.execute(
        _ADD, {"referral_id": referral_id, "restricted_at": at, "restricted_by": by}
    )
    return True
