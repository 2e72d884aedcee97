"""The log of identity reads the notifier serves (issue 34): who read which referral's
patient name, when, by which route and page. It names no identity itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, delete, insert, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import AnyRow
from services.notifier.store.tables import centre_appointments, contacts, identity_reads

_ADD = insert(identity_reads)
_RECENT = select(identity_reads.c.referral_id).where(
    identity_reads.c.reader == bindparam("reader"),
    identity_reads.c.route == bindparam("route"),
    identity_reads.c.account.is_not_distinct_from(bindparam("account")),
    identity_reads.c.at >= bindparam("since"),
    identity_reads.c.reason.is_(None),
)
_NEWEST = (
    select(identity_reads)
    .order_by(identity_reads.c.at.desc(), identity_reads.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)
# The patient's pseudonym of a referral, from whichever the notifier heard of first.
_PATIENT_REF = union(
    select(contacts.c.patient_ref).where(contacts.c.referral_id == bindparam("referral_id")),
    select(centre_appointments.c.patient_ref).where(
        centre_appointments.c.referral_id == bindparam("referral_id")
    ),
)
_DUE = (
    select(identity_reads.c.id)
    .where(identity_reads.c.at <= bindparam("cutoff"))
    .order_by(identity_reads.c.id)
    .limit(bindparam("limit", type_=Integer))
)
_DELETE = delete(identity_reads).where(identity_reads.c.id.in_(bindparam("ids", expanding=True)))


async def add(session: AsyncSession, entries: Sequence[dict[str, Any]]) -> None:
    """Reads, each with ``at``, ``referral_id``, ``patient_ref``, ``reader_role``,
    ``reader``, ``account``, ``route``, ``page``, ``reason``."""
    if entries:
        await session.execute(_ADD, list(entries))


async def recent(
    session: AsyncSession, reader: str, account: str | None, route: str, since: datetime
) -> set[str]:
    """The referrals ``reader`` (through the console's ``account``) read by ``route``
    since ``since``."""
    parameters = {"reader": reader, "account": account, "route": route, "since": since}
    return set((await session.scalars(_RECENT, parameters)).all())


async def patient_ref(session: AsyncSession, referral_id: str) -> str | None:
    found = await session.scalar(_PATIENT_REF, {"referral_id": referral_id})
    return None if found is None else str(found)


async def newest(
    session: AsyncSession,
    *,
    patient_refs: Sequence[str] | None = None,
    account: str | None = None,
    limit: int = 500,
) -> Sequence[AnyRow]:
    """The reads, newest first, of these patients, or of one account, when given."""
    query = _NEWEST
    if patient_refs is not None:
        query = query.where(identity_reads.c.patient_ref.in_(list(patient_refs)))
    if account is not None:
        # The console's login, or a token's subject (an API's reader).
        query = query.where(
            or_(identity_reads.c.account == account, identity_reads.c.reader == account)
        )
    return (await session.execute(query, {"limit": limit})).all()


async def due(session: AsyncSession, cutoff: datetime, limit: int) -> list[int]:
    """Entries written at ``cutoff`` or before (the purge's candidates)."""
    return list((await session.scalars(_DUE, {"cutoff": cutoff, "limit": limit})).all())


async def delete_reads(session: AsyncSession, ids: Sequence[int]) -> int:
    await session.execute(_DELETE, {"ids": list(ids)})
    return len(ids)
