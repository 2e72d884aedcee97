"""The scheduler's part of a patient's request of access (issue 34): appointments,
their outcomes and moves, the waiting list, the regulations booked on; by pseudonym."""

from __future__ import annotations

from typing import Any

from services.scheduler.store import privacy
from shared.db import Database, as_utc


def _time(value: Any) -> str | None:
    return None if value is None else as_utc(value).isoformat()


async def patient_part(database: Database, patient_refs: list[str]) -> dict[str, Any]:
    async with database.transaction() as session:
        booked = await privacy.appointments_of_patients(session, patient_refs)
        waiting = await privacy.waiting(session, patient_refs)
        ids = sorted({a.referral_id for a in booked} | {w.referral_id for w in waiting})
        moves = await privacy.moves_of(session, ids)
        regulations = await privacy.regulations_of(session, ids)
    return {
        "appointments": [
            {
                "referral_id": a.referral_id,
                "appointment_id": a.id,
                "centre_id": a.centre_id,
                "centre": a.centre_name,
                "start": _time(a.start),
                "end": _time(a.end),
                "priority": a.priority,
                "status": a.status,
                "outcome": a.outcome,
                "outcome_at": _time(a.outcome_at),
                "booked_at": _time(a.created_at),
            }
            for a in booked
        ],
        "moves": [
            {
                "referral_id": m.referral_id,
                "appointment_id": m.appointment_id,
                "replaced_by": m.replaced_by,
                "moved_by": m.moved_by,
                "reason": m.reason,
                "moved_at": _time(m.moved_at),
            }
            for m in moves
        ],
        "waiting": [
            {
                "referral_id": w.referral_id,
                "priority": w.priority,
                "deadline": _time(w.deadline),
                "queued_at": _time(w.queued_at),
            }
            for w in waiting
        ],
        "regulations": [
            {
                "referral_id": r.referral_id,
                "reasons": r.reasons,
                "protocol_version": r.protocol_version,
                "decided_by": r.decided_by,
                "regulated_at": _time(r.regulated_at),
            }
            for r in regulations
        ],
    }
