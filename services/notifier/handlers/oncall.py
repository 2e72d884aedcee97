"""The ARS's on-call (the ``alerts`` queue): a département's alert (saturation, a
waiting list) e-mailed and texted to the on-call contacts the settings declare for it,
at most one beginning an hour per département, and the end of one they heard, once.

Like every message for the outside world, the handler records what to send as pending
notifications in its transaction (with what it records of the alert), and the
dispatcher sends them after the commit, with retries, once each (``dispatcher.py``):
a redelivered alert is in the inbox already and stages nothing twice; a crash before
the send leaves them pending, and a crash after it resends with the same Message-ID /
idempotency key. The hour is counted on the alert's own time (the envelope's), so that
a redelivery decides alike. Who the contacts are is never stored nor logged: a
notification names the département and the contact's rank in the settings, and the
dispatcher reads the address from the settings when it sends."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import structlog

from services.notifier.domain.oncall import (
    OnCall,
    OnCallContacts,
    recipient,
    tell_beginning,
    template,
    words,
)
from services.notifier.handlers.channels import Contact, PatientChannel
from services.notifier.store import notifications, oncall
from shared.consumer import Delivery
from shared.db import as_utc
from shared.events import CapacityAlert, Channel, RecipientKind, new_id, utcnow

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
        session, kind = delivery.session, alert.kind.value
        at = as_utc(delivery.envelope.time)
        if alert.cleared:
            if not await oncall.close_alert(session, alert.departement, kind):
                return  # its beginning was not told: its end is not either
        else:
            told_before = await oncall.last_told(session, alert.departement)
            if not tell_beginning(told_before, at):
                return  # told within the hour (its end will not be told either)
            await oncall.open_alert(session, alert.departement, kind)
            await oncall.mark_told(session, alert.departement, kind, at)
        await self._stage_oncall(delivery, alert, contacts)

    async def _stage_oncall(
        self, delivery: Delivery, alert: CapacityAlert, contacts: Sequence[OnCall]
    ) -> None:
        """One pending notification per contact and channel that reaches them."""
        subject, text = words(alert)
        staged, now = 0, utcnow()  # sent as soon as committed, whatever the alert's time
        for index, person in enumerate(contacts):
            contact = Contact("", "", person.phone, person.email, sms_consent=True)
            for channel in self.oncall_channels:
                if not channel.reaches(contact):
                    continue
                await notifications.add_pending(
                    delivery.session,
                    notification_id=new_id(),
                    cause_event_id=delivery.envelope.id,
                    referral_id=None,
                    recipient_kind=RecipientKind.ONCALL,
                    recipient=recipient(alert.departement, index),
                    channel=Channel(channel.name),
                    template=template(alert),
                    subject=subject,
                    body=text,
                    target={"oncall": alert.departement, "index": index},
                    next_attempt_at=now,
                    created_at=now,
                )
                staged += 1
        log.info(
            "on-call to be told",
            departement=alert.departement,
            kind=alert.kind.value,
            cleared=alert.cleared,
            messages=staged,
        )
