"""A received referral: its case, and the decision of the protocol that applies."""

from __future__ import annotations

import structlog

from services.regulation.domain.rules import decide
from services.regulation.handlers.decisions import record_decision
from services.regulation.store.cases import CaseRecord, add_case, load_case
from services.regulation.store.protocols import ProtocolBook
from shared.consumer import Delivery
from shared.events import ReferralReceived, utcnow

log = structlog.get_logger(__name__)


class ReferralHandlers:
    """The ``referrals`` queue (referral.received)."""

    book: ProtocolBook

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
        outcome = decide(record.case(), protocol, now)
        regulated = await record_decision(session, record, outcome, decided_by="protocol", now=now)
        await delivery.emit(regulated, correlation_id=referral.referral_id)
