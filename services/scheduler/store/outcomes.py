"""What centres record of their consultations (issue 27): the outcome that stands,
and each correction of it, kept in the audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store.bookings import AnyRow
from services.scheduler.store.tables import consultation_outcomes, outcome_corrections

_OUTCOME = select(consultation_outcomes).where(
    consultation_outcomes.c.appointment_id == bindparam("appointment_id")
)
_INSERT_OUTCOME = insert(consultation_outcomes)
_DELETE_OUTCOME = delete(consultation_outcomes).where(
    consultation_outcomes.c.appointment_id == bindparam("appointment_id")
)
_SET_OUTCOME = (
    update(consultation_outcomes)
    .where(consultation_outcomes.c.appointment_id == bindparam("outcome_of"))
    .values(outcome=bindparam("new_outcome"))
)
_INSERT_CORRECTION = insert(outcome_corrections)


async def consultation_outcome(session: AsyncSession, appointment_id: str) -> AnyRow | None:
    """The outcome recorded for the appointment (``outcome``, ``recorded_at``,
    ``recorded_by``), or None."""
    return (await session.execute(_OUTCOME, {"appointment_id": appointment_id})).first()


async def record_outcome(
    session: AsyncSession, appointment_id: str, outcome: str, recorded_at: datetime, by: str
) -> None:
    """The outcome recorded now (in place of one recorded before an escalation: the
    window of its correction starts again)."""
    await session.execute(_DELETE_OUTCOME, {"appointment_id": appointment_id})
    await session.execute(
        _INSERT_OUTCOME,
        {
            "appointment_id": appointment_id,
            "outcome": outcome,
            "recorded_at": recorded_at,
            "recorded_by": by[:128],
        },
    )


async def correct_outcome(
    session: AsyncSession,
    *,
    correction_id: str,
    appointment: AnyRow,
    from_outcome: str,
    to_outcome: str,
    actor: str,
    sender_user: str,
    via: str | None,
    reason: str,
    corrected_at: datetime,
) -> None:
    """The outcome that stands changed, and the correction kept in the audit trail."""
    await session.execute(_SET_OUTCOME, {"outcome_of": appointment.id, "new_outcome": to_outcome})
    await session.execute(
        _INSERT_CORRECTION,
        {
            "id": correction_id,
            "appointment_id": appointment.id,
            "referral_id": appointment.referral_id,
            "centre_id": appointment.centre_id,
            "from_outcome": from_outcome,
            "to_outcome": to_outcome,
            "actor": actor[:128],
            "sender_user": sender_user[:128],
            "via": via[:128] if via else None,
            "reason": reason[:500],
            "corrected_at": corrected_at,
        },
    )
