"""A received referral: its case, and the decision of the protocol that applies."""

from __future__ import annotations

from datetime import datetime

import structlog

from services.regulation.domain.override import attached_outcome
from services.regulation.domain.protocol import Protocol
from services.regulation.domain.rules import Outcome, decide
from services.regulation.handlers.decisions import record_decision
from services.regulation.store.cases import CaseRecord, add_case, load_case, relocate_case
from services.regulation.store.protocols import ProtocolBook
from shared.consumer import Delivery
from shared.events import PatientRelocated, ReferralReceived, utcnow
from shared.events.vocabulary import AttachedDecision
from shared.territory import Territories

log = structlog.get_logger(__name__)


class ReferralHandlers:
    """The ``referrals`` queue (referral.received, patient.relocated)."""

    book: ProtocolBook
    territories: Territories

    def _attached(self, referral: ReferralReceived) -> AttachedDecision | None:
        """The regulator's decision the referral carries, when its SAMU decides for the
        patient's département (as a regulation.decided must: ``OverrideHandlers``);
        intake passes one on from Centre 15 only. A SAMU's decision outside its
        territory is not applied: the protocol decides, as for any referral."""
        attached = referral.regulator_decision
        samu = referral.referrer.identifier
        if attached is None or not samu.startswith("samu-"):
            return attached  # the national Centre 15 (an operator's user) covers all
        scope = self.territories.scope(samu)
        if scope is not None and scope.covers(referral.departement):
            return attached
        log.warning(
            "attached decision outside the SAMU's territory: not applied",
            referral_id=referral.referral_id,
            samu=samu,
            departement=referral.departement,
        )
        return None

    async def on_relocated(self, delivery: Delivery) -> None:
        """The patient is now elsewhere (intake, from the referrer's correction): the
        case's commune follows, so that a decision taken later (a regulator's, on a case
        held) books from the new place. A case not yet received changes nothing."""
        moved = delivery.payload_as(PatientRelocated)
        await relocate_case(
            delivery.session, moved.referral_id, moved.commune_insee, moved.departement
        )

    async def on_received(self, delivery: Delivery) -> None:
        referral = delivery.payload_as(ReferralReceived)
        session = delivery.session
        if await load_case(session, referral.referral_id) is not None:
            # The same referral under another event id: its decision already stands.
            log.info("referral already regulated", referral_id=referral.referral_id)
            return
        record = CaseRecord(
            referral_id=referral.referral_id,
            patient_ref=referral.patient_ref,
            age=referral.age,
            commune_insee=referral.commune_insee,
            departement=referral.departement,
            referrer_kind=referral.referrer.kind,
            purpose=referral.purpose,
            clinical=referral.clinical,
        )
        await add_case(session, record, received_at=referral.submitted_at)
        protocol = await self.book.active(session)
        now = utcnow()
        attached = self._attached(referral)
        outcome = _outcome(record, protocol, attached, now)
        # The regulator's when their decision stands; the protocol's when the case's
        # severity (or a decision that cannot stand) overrode it: the reasons say which.
        stands = attached is not None and outcome.decision is attached.decision
        decided_by = attached.regulator_id if attached is not None and stands else "protocol"
        regulated = await record_decision(
            session,
            record,
            outcome,
            decided_by=decided_by,
            now=now,
            comment=attached.comment if attached is not None else None,
        )
        await delivery.emit(regulated, correlation_id=referral.referral_id)


def _outcome(
    record: CaseRecord, protocol: Protocol, attached: AttachedDecision | None, now: datetime
) -> Outcome:
    """The protocol's decision, or the one Centre 15's regulator attached to the
    referral: applied as a regulation.decided would be, from the first decision on, so
    that the protocol's own orientation never stands in its place."""
    if attached is None:
        return decide(record.case(), protocol, now)
    return attached_outcome(
        record.case(),
        protocol,
        decision=attached.decision,
        priority=attached.priority,
        regulator_id=attached.regulator_id,
        comment=attached.comment,
        now=now,
    )
