"""The patient's contact details (the ``contacts`` queue), which only the notifier
receives, and with them who referred the patient."""

from __future__ import annotations

from services.notifier.handlers.telling import Teller
from services.notifier.store import contacts, keys, referrers
from shared.consumer import Delivery
from shared.events import PatientContact, ReferrerRef


class ContactHandlers(Teller):
    async def on_contact(self, delivery: Delivery) -> None:
        contact = delivery.payload_as(PatientContact)
        if contact.corrected:
            await self._rename(delivery, contact)
            return
        session = delivery.session
        # Once: a repeated contact is the same patient's. Sealed (issue 34).
        if not await contacts.contact_known(session, contact.referral_id):
            clear = {
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "phone": contact.phone,
                "email": contact.email,
            }
            await contacts.keep_contact(
                session,
                referral_id=contact.referral_id,
                patient_ref=contact.patient_ref,
                sms_consent=contact.sms_consent,
                sealed=await self.vault.sealed(session, contact.referral_id, clear),
            )
        if contact.referrer is not None:
            await self._learn_referrer(delivery, contact.referral_id, contact.referrer)

    async def _rename(self, delivery: Delivery, contact: PatientContact) -> None:
        """A corrected name (``contact.corrected``): the channels are left as they were;
        the whole contact sealed again under the current key (one key a row)."""
        session = delivery.session
        row = await contacts.contact(session, contact.referral_id)
        if row is None:
            return
        clear = await self.vault.contact(session, row)
        clear.update(first_name=contact.first_name, last_name=contact.last_name)
        await keys.reseal(
            session, contact.referral_id, await self.vault.sealed(session, row.referral_id, clear)
        )

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
