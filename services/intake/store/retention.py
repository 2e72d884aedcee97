"""The purge of what is past its retention (issue 34): the identities of referrals
final long enough, and their clinical details (``domain.retention`` says which). Each
call handles one batch of keys, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store import AnyRow
from services.intake.store.tables import identities, identity_reads, referrals, status_history

# Candidates, by id after a cursor: the domain then says which are final.
_FINAL_LONG_ENOUGH = (
    referrals.c.status.in_(bindparam("statuses", expanding=True)),
    referrals.c.updated_at <= bindparam("cutoff"),
    referrals.c.id > bindparam("after"),
)
_CANDIDATE = (referrals.c.id, referrals.c.status, referrals.c.updated_at)
_IDENTITIES_DUE = (
    select(*_CANDIDATE)
    .join(identities, referrals.c.id == identities.c.referral_id)
    .where(*_FINAL_LONG_ENOUGH)
    .order_by(referrals.c.id)
    .limit(bindparam("limit"))
)
_DELETE_IDENTITIES = delete(identities).where(
    identities.c.referral_id.in_(bindparam("ids", expanding=True))
)
_CLINICAL_DUE = (
    select(*_CANDIDATE)
    .where(*_FINAL_LONG_ENOUGH, referrals.c.clinical_purged_at.is_(None))
    .order_by(referrals.c.id)
    .limit(bindparam("limit"))
)
_DETAILS = select(referrals.c.id, referrals.c.detail).where(
    referrals.c.id.in_(bindparam("ids", expanding=True))
)
_HISTORY_DETAILS = select(status_history.c.event_id, status_history.c.detail).where(
    status_history.c.referral_id.in_(bindparam("ids", expanding=True))
)
_SET_DETAIL = (
    update(referrals)
    .where(referrals.c.id == bindparam("id_"))
    .values(detail=bindparam("new_detail"), clinical_purged_at=bindparam("purged_at"))
)
_SET_HISTORY_DETAIL = (
    update(status_history)
    .where(status_history.c.event_id == bindparam("event_id_"))
    .values(detail=bindparam("new_detail"))
)

Strip = Callable[[Mapping[str, Any]], dict[str, Any]]


async def identity_candidates(
    session: AsyncSession, statuses: Sequence[str], cutoff: datetime, after: str, limit: int
) -> Sequence[AnyRow]:
    """Referrals whose identity is still kept, in ``statuses`` since ``cutoff`` or
    before, ids after ``after``: ``id``, ``status``, ``updated_at``."""
    params = {"statuses": list(statuses), "cutoff": cutoff, "after": after, "limit": limit}
    return (await session.execute(_IDENTITIES_DUE, params)).all()


async def delete_identities(session: AsyncSession, referral_ids: Sequence[str]) -> int:
    await session.execute(_DELETE_IDENTITIES, {"ids": list(referral_ids)})
    return len(referral_ids)


async def clinical_candidates(
    session: AsyncSession, statuses: Sequence[str], cutoff: datetime, after: str, limit: int
) -> Sequence[AnyRow]:
    """Referrals whose details are not purged yet, as ``identity_candidates``."""
    params = {"statuses": list(statuses), "cutoff": cutoff, "after": after, "limit": limit}
    return (await session.execute(_CLINICAL_DUE, params)).all()


async def strip_clinical(
    session: AsyncSession, referral_ids: Sequence[str], strip: Strip, now: datetime
) -> int:
    """Each referral's detail and its history's, as ``strip`` leaves them; marked purged."""
    ids = list(referral_ids)
    current = (await session.execute(_DETAILS, {"ids": ids})).all()
    await session.execute(
        _SET_DETAIL,
        [
            {"id_": row.id, "new_detail": strip(row.detail or {}), "purged_at": now}
            for row in current
        ],
    )
    entries = (await session.execute(_HISTORY_DETAILS, {"ids": ids})).all()
    if entries:
        await session.execute(
            _SET_HISTORY_DETAIL,
            [{"event_id_": e.event_id, "new_detail": strip(e.detail or {})} for e in entries],
        )
    return len(current)


_READS_DUE = (
    select(identity_reads.c.id)
    .where(identity_reads.c.at <= bindparam("cutoff"))
    .order_by(identity_reads.c.id)
    .limit(bindparam("limit"))
)
_DELETE_READS = delete(identity_reads).where(
    identity_reads.c.id.in_(bindparam("ids", expanding=True))
)


async def reads_due(session: AsyncSession, cutoff: datetime, limit: int) -> list[int]:
    """Entries of the log of identity reads written at ``cutoff`` or before."""
    return list((await session.scalars(_READS_DUE, {"cutoff": cutoff, "limit": limit})).all())


async def delete_reads(session: AsyncSession, ids: Sequence[int]) -> int:
    await session.execute(_DELETE_READS, {"ids": list(ids)})
    return len(ids)
