"""What regulation holds on one patient (issue 34): their cases and every decision on
each, by pseudonym."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.store.tables import cases, decisions

_CASES = (
    select(cases)
    .where(cases.c.patient_ref.in_(bindparam("refs", expanding=True)))
    .order_by(cases.c.received_at)
)
_DECISIONS = (
    select(decisions)
    .where(decisions.c.referral_id.in_(bindparam("ids", expanding=True)))
    .order_by(decisions.c.decided_at)
)


async def cases_of_patients(session: AsyncSession, patient_refs: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_CASES, {"refs": list(patient_refs)})).all()


async def decisions_on(session: AsyncSession, referral_ids: Sequence[str]) -> Sequence[Any]:
    return (await session.execute(_DECISIONS, {"ids": list(referral_ids)})).all()
