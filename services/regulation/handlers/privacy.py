"""Regulation's part of a patient's request of access (issue 34): each case (the
clinical details it was decided on) and every decision with its reasons, by pseudonym."""

from __future__ import annotations

from typing import Any

from services.regulation.store import privacy
from shared.db import Database, as_utc


def _time(value: Any) -> str | None:
    return None if value is None else as_utc(value).isoformat()


async def patient_part(database: Database, patient_refs: list[str]) -> dict[str, Any]:
    async with database.transaction() as session:
        cases = await privacy.cases_of_patients(session, patient_refs)
        decisions = await privacy.decisions_on(session, [c.referral_id for c in cases])
    return {
        "cases": [
            {
                "referral_id": c.referral_id,
                "age": c.age,
                "commune_insee": c.commune_insee,
                "departement": c.departement,
                "purpose": c.purpose,
                "clinical": c.clinical,
                "received_at": _time(c.received_at),
                "decisions": [
                    {
                        "decision": d.decision,
                        "priority": d.priority,
                        "deadline": _time(d.deadline),
                        "test_eligible": d.test_eligible,
                        "reasons": d.reasons,
                        "protocol_version": d.protocol_version,
                        "decided_by": d.decided_by,
                        "decided_at": _time(d.decided_at),
                        "comment": d.comment,
                    }
                    for d in decisions
                    if d.referral_id == c.referral_id
                ],
            }
            for c in cases
        ]
    }
