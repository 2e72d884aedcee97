"""A decision, the protocol's or a regulator's: appended to the case's trail and
announced (referral.regulated), for the caller to stage in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.domain.rules import Outcome
from services.regulation.store.cases import CaseRecord, append_decision
from shared.events import ReferralRegulated


async def record_decision(
    session: AsyncSession,
    record: CaseRecord,
    outcome: Outcome,
    *,
    decided_by: str,
    now: datetime,
    supersedes: str | None = None,
    comment: str | None = None,
) -> ReferralRegulated:
    """Append the decision to the trail, make it the case's current one, and return the
    event that announces it (for the caller to stage in the same transaction)."""
    decision_id = await append_decision(
        session,
        record,
        outcome,
        decided_by=decided_by,
        now=now,
        supersedes=supersedes,
        comment=comment,
    )
    return ReferralRegulated(
        referral_id=record.referral_id,
        patient_ref=record.patient_ref,
        decision=outcome.decision,
        priority=outcome.priority,
        deadline=outcome.deadline,
        test_eligible=outcome.test_eligible,
        reasons=outcome.reasons,
        protocol_version=outcome.protocol_version,
        decided_by=decided_by,
        decision_id=decision_id,
        supersedes=supersedes,
        age=record.age,
        commune_insee=record.commune_insee,
        departement=record.departement,
    )
