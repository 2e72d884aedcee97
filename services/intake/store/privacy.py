"""What intake holds on one patient, for their request of access (issue 34): their
referrals by pseudonym. The identity, the history and the reads are read through
``referrals``, ``history`` and ``reads``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.store.tables import referrals

_OF_PATIENTS = (
    select(referrals.c.id)
    .where(referrals.c.patient_ref.in_(bindparam("refs", expanding=True)))
    .order_by(referrals.c.received_at)
)


async def referrals_of_patients(session: AsyncSession, patient_refs: Sequence[str]) -> list[str]:
    """Every referral of these pseudonyms, oldest first."""
    return list((await session.scalars(_OF_PATIENTS, {"refs": list(patient_refs)})).all())
