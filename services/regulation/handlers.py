"""Regulation's consumers: each received referral gets a decision from the protocol."""

from __future__ import annotations

from sqlalchemy import insert, update

from services.regulation.domain.protocol import Protocol
from services.regulation.domain.rules import Case, Outcome, decide
from services.regulation.tables import cases, decisions
from shared.consumer import Delivery
from shared.events import ReferralReceived, ReferralRegulated, new_id, utcnow


class RegulationHandlers:
    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol

    async def on_received(self, delivery: Delivery) -> None:
        referral = delivery.payload_as(ReferralReceived)
        await delivery.session.execute(
            insert(cases).values(
                referral_id=referral.referral_id,
                patient_ref=referral.patient_ref,
                age=referral.age,
                commune_insee=referral.commune_insee,
                departement=referral.departement,
                referrer_kind=referral.referrer.kind.value,
                purpose=referral.purpose.value,
                clinical=referral.clinical.model_dump(mode="json"),
                received_at=referral.submitted_at,
            )
        )
        now = utcnow()
        outcome = decide(
            Case(
                age=referral.age,
                clinical=referral.clinical,
                referrer_kind=referral.referrer.kind,
                purpose=referral.purpose,
            ),
            self.protocol,
            now,
        )
        await record_decision(delivery, referral, outcome, decided_by="protocol")


async def record_decision(
    delivery: Delivery,
    referral: ReferralReceived,
    outcome: Outcome,
    *,
    decided_by: str,
    supersedes: str | None = None,
    comment: str | None = None,
) -> None:
    decision_id = new_id()
    await delivery.session.execute(
        insert(decisions).values(
            id=decision_id,
            referral_id=referral.referral_id,
            decision=outcome.decision.value,
            priority=outcome.priority.value if outcome.priority else None,
            deadline=outcome.deadline,
            test_eligible=outcome.test_eligible,
            reasons=[r.model_dump(mode="json") for r in outcome.reasons],
            protocol_version=outcome.protocol_version,
            decided_by=decided_by,
            decided_at=utcnow(),
            supersedes=supersedes,
            comment=comment,
        )
    )
    await delivery.session.execute(
        update(cases)
        .where(cases.c.referral_id == referral.referral_id)
        .values(current_decision_id=decision_id)
    )
    await delivery.emit(
        ReferralRegulated(
            referral_id=referral.referral_id,
            patient_ref=referral.patient_ref,
            decision=outcome.decision,
            priority=outcome.priority,
            deadline=outcome.deadline,
            test_eligible=outcome.test_eligible,
            reasons=outcome.reasons,
            protocol_version=outcome.protocol_version,
            decided_by=decided_by,
            decision_id=decision_id,
            supersedes=supersedes,
            age=referral.age,
            commune_insee=referral.commune_insee,
            departement=referral.departement,
        ),
        correlation_id=referral.referral_id,
    )
