"""The log of identity reads (issue 34): who read which referral's identity, when, by
which route and page, and why when the page asked. It names no identity itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store import AnyRow
from services.intake.store.tables import identity_reads

_ADD = insert(identity_reads)
_NEWEST = (
    select(identity_reads)
    .order_by(identity_reads.c.at.desc(), identity_reads.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def add(session: AsyncSession, entries: Sequence[dict[str, Any]]) -> None:
    """Reads, each with ``at``, ``referral_id``, ``patient_ref``, ``reader_role``,
    ``reader``, ``account``, ``route``, ``page``, ``reason``."""
    if entries:
        await session.execute(_ADD, list(entries))


_RECENT = select(identity_reads.c.referral_id).where(
    identity_reads.c.reader == bindparam("reader"),
    identity_reads.c.route == bindparam("route"),
    identity_reads.c.at >= bindparam("since"),
    identity_reads.c.reason.is_(None),
)


async def recent(session: AsyncSession, reader: str, route: str, since: datetime) -> set[str]:
    """The referrals ``reader`` read by ``route`` since ``since``, without a reason."""
    parameters = {"reader": reader, "route": route, "since": since}
    return set((await session.scalars(_RECENT, parameters)).all())


async def newest(
    session: AsyncSession,
    *,
    referral_id: str | None = None,
    patient_ref: str | None = None,
    account: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> Sequence[AnyRow]:
    """The reads, newest first, of one referral, patient or account when given."""
    query = _NEWEST
    if referral_id is not None:
        query = query.where(identity_reads.c.referral_id == referral_id)
    if patient_ref is not None:
        query = query.where(identity_reads.c.patient_ref == patient_ref)
    if account is not None:
        # The console's login, or a token's subject (an API's reader).
        query = query.where(
            or_(identity_reads.c.account == account, identity_reads.c.reader == account)
        )
    if since is not None:
        query = query.where(identity_reads.c.at >= since)
    return (await session.execute(query, {"limit": limit})).all()
