"""The patient's contact details (the ``contacts`` queue), which only the notifier
receives, and with them who referred the patient."""

from __future__ import annotations

from services.notifier.handlers.telling import Teller
from services.notifier.store import contacts, referrers
from shared.consumer import Delivery
from shared.events import PatientContact, ReferrerRef


class ContactHandlers(Teller):
    async def on_contact(self, delivery: Delivery) -> None:
        contact = delivery.payload_as(PatientContact)
        if contact.corrected:
            await contacts.rename_contact(delivery.session, contact)
            return
        await contacts.keep_contact(delivery.session, contact)
        if contact.referrer is not None:
            await self._learn_referrer(delivery, contact.referral_id, contact.referrer)

    async def _learn_referrer(
        self, delivery: Delivery, referral_id: str, referrer: ReferrerRef
    ) -> None:
        """Record who referred the patient, once, and tell it what was kept for it:
        intake sends the referrer with the contact (patient.contact, for every accepted
        referral), so the notifier needs no referral.received of its own."""
        session = delivery.session
        if await referrers.referrer_known(session, referral_id):
            return  # a redelivered or repeated contact: recorded and flushed already
        await referrers.add_referrer(session, referral_id, referrer)
        await self._flush_deferred(delivery, referral_id)
