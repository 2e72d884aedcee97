"""The cases regulation keeps, and the append-only trail of their decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.domain.rules import Case, Outcome
from services.regulation.store.tables import cases, decisions
from shared.db import as_utc
from shared.events import Clinical, Purpose, ReferrerKind, new_id
from shared.territory import Scope

log = structlog.get_logger(__name__)

# The statements every referral runs are built once, here, with their parameters bound
# per call: a message costs the execution, not the construction.
_CASE = select(cases).where(cases.c.referral_id == bindparam("referral_id"))
# FOR UPDATE on PostgreSQL; compiled to nothing on SQLite, which has one writer anyway.
_CASE_LOCKED = _CASE.with_for_update()
_INSERT_CASE = insert(cases)
_INSERT_DECISION = insert(decisions)
_CURRENT_DECISION = (
    update(cases)
    # Not "referral_id": an UPDATE reserves its table's column names for SET.
    .where(cases.c.referral_id == bindparam("b_referral_id"))
    .values(current_decision_id=bindparam("decision_id"))
)
_CURRENT_DECISION_ID = select(cases.c.current_decision_id).where(
    cases.c.referral_id == bindparam("referral_id")
)
_TRAIL = (
    select(decisions)
    .where(decisions.c.referral_id == bindparam("referral_id"))
    .order_by(decisions.c.decided_at, decisions.c.id)
)
_DEPARTEMENT = select(cases.c.departement).where(cases.c.referral_id == bindparam("referral_id"))
# Whose decision that stands is HOLD, longest waiting first: everyone's (an operator,
# the national Centre 15), or a SAMU's départements only.
_HELD = (
    select(
        cases.c.referral_id,
        cases.c.age,
        cases.c.commune_insee,
        cases.c.departement,
        cases.c.referrer_kind,
        cases.c.received_at,
        decisions.c.id,
        decisions.c.decided_at,
        decisions.c.reasons,
        decisions.c.protocol_version,
        decisions.c.test_eligible,
    )
    .join(decisions, decisions.c.id == cases.c.current_decision_id)
    .where(decisions.c.decision == "hold")
    .order_by(decisions.c.decided_at, cases.c.referral_id)
)
_HELD_IN = _HELD.where(cases.c.departement.in_(bindparam("departements", expanding=True)))


@dataclass(frozen=True)
class CaseRecord:
    """A referral as regulation keeps it: pseudonymous, with its clinical picture."""

    referral_id: str
    patient_ref: str
    age: int
    commune_insee: str
    departement: str
    referrer_kind: ReferrerKind
    purpose: Purpose
    clinical: Clinical
    current_decision_id: str | None = None

    def case(self) -> Case:
        return Case(
            age=self.age,
            clinical=self.clinical,
            referrer_kind=self.referrer_kind,
            purpose=self.purpose,
        )


async def load_case(
    session: AsyncSession, referral_id: str, *, lock: bool = False
) -> CaseRecord | None:
    """The case, or None; ``lock`` holds its row until the transaction ends (PostgreSQL),
    so that two decisions on one referral line up instead of superseding the same one."""
    query = _CASE_LOCKED if lock else _CASE
    row = (await session.execute(query, {"referral_id": referral_id})).first()
    if row is None:
        return None
    return CaseRecord(
        referral_id=row.referral_id,
        patient_ref=row.patient_ref,
        age=row.age,
        commune_insee=row.commune_insee,
        departement=row.departement,
        referrer_kind=ReferrerKind(row.referrer_kind),
        purpose=Purpose(row.purpose),
        clinical=Clinical.model_validate(row.clinical),
        current_decision_id=row.current_decision_id,
    )


async def add_case(session: AsyncSession, record: CaseRecord, *, received_at: datetime) -> None:
    """A referral received: its case, with no decision yet."""
    await session.execute(
        _INSERT_CASE,
        {
            "referral_id": record.referral_id,
            "patient_ref": record.patient_ref,
            "age": record.age,
            "commune_insee": record.commune_insee,
            "departement": record.departement,
            "referrer_kind": record.referrer_kind.value,
            "purpose": record.purpose.value,
            "clinical": record.clinical.model_dump(mode="json"),
            "received_at": received_at,
        },
    )


async def append_decision(
    session: AsyncSession,
    record: CaseRecord,
    outcome: Outcome,
    *,
    decided_by: str,
    now: datetime,
    supersedes: str | None = None,
    comment: str | None = None,
) -> str:
    """Append the decision to the trail and make it the case's current one: its id."""
    decision_id = new_id()
    await session.execute(
        _INSERT_DECISION,
        {
            "id": decision_id,
            "referral_id": record.referral_id,
            "decision": outcome.decision.value,
            "priority": outcome.priority.value if outcome.priority else None,
            "deadline": outcome.deadline,
            "test_eligible": outcome.test_eligible,
            "reasons": [r.model_dump(mode="json") for r in outcome.reasons],
            "protocol_version": outcome.protocol_version,
            "decided_by": decided_by,
            "decided_at": now,
            "supersedes": supersedes,
            "comment": comment or None,
        },
    )
    await session.execute(
        _CURRENT_DECISION, {"b_referral_id": record.referral_id, "decision_id": decision_id}
    )
    return decision_id


def decision_view(row: Any, current_decision_id: str | None) -> dict[str, Any]:
    return {
        "decision_id": row.id,
        "referral_id": row.referral_id,
        "decision": row.decision,
        "priority": row.priority,
        "deadline": as_utc(row.deadline).isoformat() if row.deadline else None,
        "test_eligible": row.test_eligible,
        "reasons": row.reasons,
        "protocol_version": row.protocol_version,
        "decided_by": row.decided_by,
        "decided_at": as_utc(row.decided_at).isoformat(),
        "supersedes": row.supersedes,
        "comment": row.comment,
        "current": row.id == current_decision_id,
    }


async def decision_trail(session: AsyncSession, referral_id: str) -> dict[str, Any] | None:
    """Every decision on the referral, oldest first, or None for an unknown referral."""
    current = (await session.execute(_CURRENT_DECISION_ID, {"referral_id": referral_id})).first()
    if current is None:
        return None
    rows = (await session.execute(_TRAIL, {"referral_id": referral_id})).all()
    return {
        "referral_id": referral_id,
        "current_decision_id": current.current_decision_id,
        "decisions": [decision_view(r, current.current_decision_id) for r in rows],
    }


# A patient now elsewhere (patient.relocated): a later decision books from there, and
# the case is the new département's SAMU's to see.
_RELOCATE = (
    update(cases)
    .where(cases.c.referral_id == bindparam("which"))
    .values(commune_insee=bindparam("new_commune"), departement=bindparam("new_departement"))
)


async def relocate_case(
    session: AsyncSession, referral_id: str, commune_insee: str, departement: str
) -> None:
    await session.execute(
        _RELOCATE,
        {"which": referral_id, "new_commune": commune_insee, "new_departement": departement},
    )


async def case_departement(session: AsyncSession, referral_id: str) -> str | None:
    """The département of the referral's patient, None for an unknown referral."""
    found: str | None = await session.scalar(_DEPARTEMENT, {"referral_id": referral_id})
    return found


async def held_cases(session: AsyncSession, scope: Scope | None = None) -> list[dict[str, Any]]:
    """Referrals whose decision that stands is HOLD, longest waiting first; of the
    SAMU's départements only, given its ``scope``."""
    if scope is None:
        rows = (await session.execute(_HELD)).all()
    else:
        departements = sorted(scope.departements)
        rows = (await session.execute(_HELD_IN, {"departements": departements})).all()
    return [
        {
            "referral_id": r.referral_id,
            "decision_id": r.id,
            "held_since": as_utc(r.decided_at).isoformat(),
            "received_at": as_utc(r.received_at).isoformat(),
            "age": r.age,
            "commune_insee": r.commune_insee,
            "departement": r.departement,
            "referrer_kind": r.referrer_kind,
            "test_eligible": r.test_eligible,
            "protocol_version": r.protocol_version,
            "reasons": r.reasons,
        }
        for r in rows
    ]
