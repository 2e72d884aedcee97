"""The purge of a case's clinical details past their retention (issue 34): one batch
of cases per call, in the caller's transaction (``domain.retention`` says which)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.store.tables import cases, decisions

_DUE = (
    select(cases.c.referral_id)
    .join(decisions, decisions.c.id == cases.c.current_decision_id)
    .where(
        cases.c.clinical_purged_at.is_(None),
        decisions.c.decision.not_in(bindparam("open", expanding=True)),
        decisions.c.decided_at <= bindparam("cutoff"),
    )
    .order_by(cases.c.referral_id)
    .limit(bindparam("limit"))
)
_STRIP_CASES = (
    update(cases)
    .where(cases.c.referral_id.in_(bindparam("ids", expanding=True)))
    .values(clinical={}, clinical_purged_at=bindparam("now"))
)
_STRIP_DECISIONS = (
    update(decisions)
    .where(decisions.c.referral_id.in_(bindparam("ids", expanding=True)))
    .values(reasons=[], comment=None)
)


async def clinical_due(
    session: AsyncSession, open_decisions: Sequence[str], cutoff: datetime, limit: int
) -> list[str]:
    """Cases decided (not held) at ``cutoff`` or before, their details still kept."""
    params = {"open": list(open_decisions), "cutoff": cutoff, "limit": limit}
    return list((await session.scalars(_DUE, params)).all())


async def strip_clinical(session: AsyncSession, referral_ids: Sequence[str], now: datetime) -> int:
    """The cases' clinical details and their decisions' reasons and comments, emptied."""
    ids = list(referral_ids)
    await session.execute(_STRIP_CASES, {"ids": ids, "now": now})
    await session.execute(_STRIP_DECISIONS, {"ids": ids})
    return len(ids)
