"""The refused submissions, by the id of the message (or HTTP request) that carried
them: their sender reads them back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store import AnyRow
from services.intake.store.tables import rejections

_INSERT_REJECTION = insert(rejections)
_REJECTION = select(rejections).where(rejections.c.id == bindparam("rejection_id"))


async def add_rejection(
    session: AsyncSession,
    *,
    rejection_id: str,
    referrer_kind: str | None,
    referrer_id: str | None,
    reference: str | None,
    referral_id: str | None,
    reasons: list[dict[str, Any]],
    rejected_at: datetime,
) -> None:
    await session.execute(
        _INSERT_REJECTION,
        {
            "id": rejection_id,
            "referrer_kind": referrer_kind,
            "referrer_id": referrer_id,
            "reference": reference,
            "referral_id": referral_id,
            "reasons": reasons,
            "rejected_at": rejected_at,
        },
    )


async def rejection(session: AsyncSession, rejection_id: str) -> AnyRow | None:
    """The refused submission filed under this id (every column of ``rejections``)."""
    return (await session.execute(_REJECTION, {"rejection_id": rejection_id})).first()
