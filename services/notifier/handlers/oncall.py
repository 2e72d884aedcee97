"""The ARS's on-call (the ``alerts`` queue): a département's alert (saturation, a
waiting list) e-mailed and texted to the on-call contacts the settings declare for it,
at most one beginning an hour per département, and its end once.

Sent from the handler, in its transaction, rather than through the dispatcher (whose
recipients are a referral's): a send that fails fails the delivery, which is tried
again with what was recorded of it undone. Who the contacts are is never logged."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import structlog

from services.notifier.domain.oncall import OnCall, OnCallContacts, tell_beginning, words
from services.notifier.handlers.channels import Contact, PatientChannel, PatientMessage
from services.notifier.store import oncall
from shared.consumer import Delivery
from shared.events import CapacityAlert, utcnow

log = structlog.get_logger(__name__)


class OnCallHandlers:
    # Set by app.py from AIGUILLAGE_ONCALL_CONTACTS and the e-mail and SMS settings;
    # none by default (tests that build the handlers alone tell nobody).
    oncall_contacts: OnCallContacts = MappingProxyType({})
    oncall_channels: Sequence[PatientChannel] = ()

    async def on_capacity_alert(self, delivery: Delivery) -> None:
        alert = delivery.payload_as(CapacityAlert)
        contacts = self.oncall_contacts.get(alert.departement, ())
        if not contacts:
            return  # nobody on call declared for it: the ARS's page still shows it
        session, kind, now = delivery.session, alert.kind.value, utcnow()
        if alert.cleared:
            if not await oncall.close_alert(session, alert.departement, kind):
                return  # its beginning was not told here: its end is not either
        else:
            told_before = await oncall.last_told(session, alert.departement)
            await oncall.open_alert(session, alert.departement, kind)
            if not tell_beginning(told_before, now):
                return  # told within the hour
            await oncall.mark_told(session, alert.departement, kind, now)
        await self._tell_oncall(delivery.envelope.id, alert, contacts)

    async def _tell_oncall(
        self, event_id: str, alert: CapacityAlert, contacts: Sequence[OnCall]
    ) -> None:
        subject, text = words(alert)
        sent = 0
        for index, person in enumerate(contacts):
            contact = Contact("", "", person.phone, person.email, sms_consent=True)
            for channel in self.oncall_channels:
                if not channel.reaches(contact):
                    continue
                # Stable per alert, contact and channel: a receiver de-duplicates a resend.
                message = PatientMessage(f"{event_id}-{index}-{channel.name}", subject, text)
                await channel.send(contact, message)
                sent += 1
        log.info(
            "on-call told",
            departement=alert.departement,
            kind=alert.kind.value,
            cleared=alert.cleared,
            messages=sent,
        )
