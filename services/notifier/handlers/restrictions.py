"""A patient's restriction of processing (``referral.restricted``, issue 34): kept, so
that the patient and their referrer are told nothing more (``telling`` asks it)."""

from __future__ import annotations

import structlog

from services.notifier.handlers.telling import Teller
from services.notifier.store import restrictions
from shared.consumer import Delivery
from shared.events import ReferralRestricted

log = structlog.get_logger(__name__)


class RestrictionHandlers(Teller):
    async def on_restricted(self, delivery: Delivery) -> None:
        restricted = delivery.payload_as(ReferralRestricted)
        if await restrictions.restrict(
            delivery.session,
            restricted.referral_id,
            restricted.patient_ref,
            restricted.restricted_at,
        ):
            log.info("referral restricted", referral_id=restricted.referral_id)
