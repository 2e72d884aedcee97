"""Referrals whose processing the patient restricted (issue 34)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store.tables import restrictions

_IS = select(restrictions.c.referral_id).where(
    restrictions.c.referral_id == bindparam("referral_id")
)
_ADD = insert(restrictions)


async def is_restricted(session: AsyncSession, referral_id: str) -> bool:
    return (await session.scalar(_IS, {"referral_id": referral_id})) is not None


async def restrict(session: AsyncSession, referral_id: str, patient_ref: str, at: datetime) -> bool:
    """Record the restriction; False when it was already (a redelivery)."""
    if await is_restricted(session, referral_id):
        return False
    await session.execute(
        _ADD, {"referral_id": referral_id, "patient_ref": patient_ref, "restricted_at": at}
    )
    return True
