"""What every notifier handler shares: whom to tell and how. A message on the broker
(the centre, a referrer's reply key, a SAMU's) is staged in the outbox with the
handler's transaction, so it is as reliable as every other event; a message for the
outside world (e-mail, SMS, webhook) is recorded as pending, and the dispatcher sends it
with retries (``dispatcher.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import structlog

from services.notifier.domain import patient_notices, restriction, templates
from services.notifier.handlers.channels import PatientChannel
from services.notifier.handlers.sealing import ContactVault
from services.notifier.store import centres, contacts, notifications, referrers, restrictions
from services.notifier.store.referrers import Referrer
from shared import tracing
from shared.consumer import Delivery
from shared.events import (
    AppointmentCancelled,
    Channel,
    NotificationSent,
    RecipientKind,
    ReferralCancelled,
    ReferralOutcome,
    ReferrerKind,
    new_id,
    utcnow,
)
from shared.settings import Settings
from shared.territory import Territories

log = structlog.get_logger(__name__)

# The national Centre 15's reply key (reply.centre-15.referral.outcome); a SAMU's is its
# name (reply.samu-35.referral.outcome).
CENTRE_15 = "centre-15"


def centre_15_keys(referrer: Referrer | None) -> set[str]:
    """The Centre 15 keys of a referrer that is a Centre 15 and hears its outcomes (its
    reply key, or its SAMU's name behind a webhook): told as the referrer, it is not
    told again as the SAMU covering the patient. None: not known yet."""
    if referrer is None or referrer.kind != ReferrerKind.CENTRE_15.value:
        return set()
    if not (referrer.reply_to or referrer.webhook_url):
        return set()
    return {k for k in (referrer.reply_to, referrer.identifier) if k}


def cancellation_detail(payload: AppointmentCancelled | ReferralCancelled) -> dict[str, Any]:
    """Who cancelled and why: the referrer's webhook says it (by, reason, code)."""
    detail: dict[str, Any] = {"reason": payload.reason, "by": payload.cancelled_by.value}
    if payload.reason_code is not None:
        detail["reason_code"] = payload.reason_code.value
    return detail


class Teller:
    """The recipients' side of the notifier's handlers: the concerns' classes
    (assignments, referrals, contacts, centres) build on it."""

    def __init__(
        self,
        patient_channels: Sequence[PatientChannel],
        provision_centre: Callable[[str], Awaitable[None]] | None = None,
        patient_link: Callable[[str, str, datetime], str] | None = None,
        territories: Territories | None = None,
        vault: ContactVault | None = None,
    ) -> None:
        self.patient_channels = list(patient_channels)
        # What seals and unseals the contacts at rest (issue 34): the settings' KEK.
        self.vault = vault or ContactVault.of(Settings())
        # Which SAMUs cover a département, and whether the national Centre 15 is enabled:
        # whom an escalation is told to (shared/territory.py).
        self.territories = territories or Territories()
        self.provision_centre = provision_centre
        # (appointment id, referral id, its end) -> the patient's signed link, put in
        # the notice (shared/patient_link.py patient_link_for); None: notices without one.
        self.patient_link = patient_link

    async def _referrer_kind(self, session: Any, referral_id: str) -> str | None:
        """Who referred the patient (``ReferrerKind``), for the notice to name them;
        None while its patient.contact is still on its way."""
        return await referrers.referrer_kind(session, referral_id)

    async def _appointment_status(self, session: Any, appointment_id: str, status: str) -> None:
        await centres.set_appointment_status(session, appointment_id, status)

    # -- recipients ----------------------------------------------------------------

    async def _with_contact(
        self, session: Any, referral_id: str, detail: dict[str, Any]
    ) -> dict[str, Any]:
        """What Centre 15 needs to call an escalated patient back, on the one key only
        Centre 15 reads (the notifier is the one service that holds a contact). If the
        contact has not arrived yet, Centre 15 reads it from intake (GET /escalations)."""
        row = await contacts.contact(session, referral_id)
        if row is None:
            return detail
        clear = await self.vault.contact(session, row)
        patient = {name: clear[name] for name in ("first_name", "last_name", "phone")}
        return {**detail, "patient": patient}

    async def _to_samus(
        self,
        delivery: Delivery,
        referral_id: str,
        departement: str | None,
        status: str,
        detail: dict[str, Any],
    ) -> None:
        """An escalation, with whom to call back, to every SAMU covering the patient's
        département, each on its own key (``reply.samu-35.referral.outcome``), and to the
        national Centre 15 only where it is enabled. Not to a Centre 15 that referred the
        patient: it hears it as the referrer. An unknown referrer (its patient.contact
        still on its way) is not assumed to be one: the SAMUs are told now, and
        ``_flush_deferred`` does not tell the referrer again on a key told already."""
        keys = self._samu_keys(departement)
        referrer = await referrers.referrer(delivery.session, referral_id)
        keys = [key for key in keys if key not in centre_15_keys(referrer)]
        if not keys:
            return
        told = await self._with_contact(delivery.session, referral_id, detail)
        for key in keys:
            await self._outcome_on_broker(
                delivery,
                key,
                referral_id,
                status,
                told,
                recipient_kind=RecipientKind.CENTRE_15,
                recipient=key,
            )

    def _samu_keys(self, departement: str | None) -> list[str]:
        """The Centre 15 keys an escalation in ``departement`` goes to."""
        keys = list(self.territories.samus_covering(departement)) if departement else []
        if self.territories.national:
            keys.append(CENTRE_15)
        if not keys:
            # Centre 15 still reads it from intake (GET /escalations), by département.
            log.warning("escalation told to no centre 15", departement=departement)
        return keys

    async def _to_referrer(
        self, delivery: Delivery, referral_id: str, status: str, detail: dict[str, Any]
    ) -> None:
        referrer = await referrers.referrer(delivery.session, referral_id)
        if referrer is None:
            # Its patient.contact travels on another queue and may still be on its way:
            # kept, and told as soon as the referrer is known (no ordering between queues
            # can then spend this message's tries).
            await referrers.defer_outcome(
                delivery.session,
                cause_event_id=delivery.envelope.id,
                referral_id=referral_id,
                status=status,
                detail=detail,
                deferred_at=utcnow(),
            )
            return
        await self._tell_referrer(delivery, referrer, status, detail, delivery.envelope.id)

    async def _flush_deferred(self, delivery: Delivery, referral_id: str) -> None:
        """Tell the referrer now known what was kept for it, in the order it happened."""
        session = delivery.session
        referrer = await referrers.referrer(session, referral_id)
        if referrer is None:  # recorded just before, in this transaction
            raise LookupError(f"no referrer recorded for {referral_id}")
        kept = await referrers.deferred(session, referral_id)
        told_centre_15: set[str] = set()
        if keys := centre_15_keys(referrer):
            told = await referrers.told_centre_15(session, referral_id)
            told_centre_15 = {cause for cause, key in told if key in keys}
        for row in kept:
            if row.cause_event_id in told_centre_15:
                continue  # the referrer, a SAMU covering the patient, heard of it already
            await self._tell_referrer(
                delivery, referrer, row.status, row.detail, row.cause_event_id
            )
        if kept:
            await referrers.drop_deferred(session, referral_id)

    async def _may_tell(
        self, delivery: Delivery, referral_id: str, recipient: RecipientKind
    ) -> bool:
        """Whether ``recipient`` is told of the referral: not when its patient restricted
        its processing and the recipient is not one care or the law needs (issue 34)."""
        restricted = await restrictions.is_restricted(delivery.session, referral_id)
        if not restriction.may_tell(recipient, restricted):
            log.info("not told: processing restricted", recipient_kind=recipient.value)
            return False
        return True

    async def _tell_referrer(
        self,
        delivery: Delivery,
        referrer: Referrer,
        status: str,
        detail: dict[str, Any],
        cause: str,
    ) -> None:
        referral_id = referrer.referral_id
        if not await self._may_tell(delivery, referral_id, RecipientKind.REFERRER):
            return
        if referrer.reply_to:
            await self._outcome_on_broker(
                delivery,
                referrer.reply_to,
                referral_id,
                status,
                detail,
                recipient_kind=RecipientKind.REFERRER,
                recipient=referrer.identifier,
                cause=cause,
            )
        if referrer.webhook_url:
            await self._pending(
                delivery,
                referral_id=referral_id,
                recipient_kind=RecipientKind.REFERRER,
                recipient=referrer.identifier,
                channel=Channel.WEBHOOK,
                template=f"referrer.{status}",
                body=templates.referrer_outcome(status, detail),
                target={
                    "url": referrer.webhook_url,
                    "payload": {"referral_id": referral_id, "status": status, "detail": detail},
                },
                cause=cause,
            )

    async def _outcome_on_broker(
        self,
        delivery: Delivery,
        reply_to: str,
        referral_id: str,
        status: str,
        detail: dict[str, Any],
        *,
        recipient_kind: RecipientKind,
        recipient: str,
        cause: str | None = None,
    ) -> None:
        text = templates.referrer_outcome(status, detail)
        await delivery.emit(
            ReferralOutcome(
                reply_to=reply_to,
                referral_id=referral_id,
                status=status,
                message=text,
                detail=detail,
            ),
            correlation_id=referral_id,
        )
        await self._sent_on_broker(
            delivery,
            referral_id=referral_id,
            recipient_kind=recipient_kind,
            recipient=recipient,
            template=f"referrer.{status}",
            body=text,
            cause=cause,
        )

    async def _to_patient(
        self, delivery: Delivery, referral_id: str, notice: patient_notices.PatientNotice
    ) -> None:
        """The notice on every patient channel: the SMS its short text, the others (the
        e-mail, the demos' record) the whole one."""
        if not await self._may_tell(delivery, referral_id, RecipientKind.PATIENT):
            return
        for channel in self.patient_channels:
            await self._pending(
                delivery,
                referral_id=referral_id,
                recipient_kind=RecipientKind.PATIENT,
                recipient=referral_id,
                channel=Channel(channel.name),
                template=notice.template,
                body=notice.body(channel.name),
                target={"referral_id": referral_id},
                subject=notice.subject,
            )

    async def _sent_on_broker(
        self,
        delivery: Delivery,
        *,
        referral_id: str | None,
        recipient_kind: RecipientKind,
        recipient: str,
        template: str,
        body: str,
        cause: str | None = None,
    ) -> None:
        """A message that travels on the broker: sent when this transaction commits."""
        notification_id = new_id()
        now = utcnow()
        await notifications.add_sent(
            delivery.session,
            notification_id=notification_id,
            cause_event_id=cause or delivery.envelope.id,
            referral_id=referral_id,
            recipient_kind=recipient_kind,
            recipient=recipient,
            template=template,
            body=body,
            now=now,
        )
        await delivery.emit(
            NotificationSent(
                notification_id=notification_id,
                referral_id=referral_id,
                recipient_kind=recipient_kind,
                recipient=recipient,
                channel=Channel.BROKER,
                template=template,
            )
        )
        log.info(
            "notification sent",
            recipient_kind=recipient_kind.value,
            recipient=recipient,
            template=template,
        )

    async def _pending(
        self,
        delivery: Delivery,
        *,
        referral_id: str | None,
        recipient_kind: RecipientKind,
        recipient: str,
        channel: Channel,
        template: str,
        body: str,
        target: dict[str, Any],
        subject: str = "",
        due: datetime | None = None,
        cause: str | None = None,
    ) -> None:
        """A message for the outside world: the dispatcher sends it after the commit."""
        await notifications.add_pending(
            delivery.session,
            notification_id=new_id(),
            cause_event_id=cause or delivery.envelope.id,
            referral_id=referral_id,
            recipient_kind=recipient_kind,
            recipient=recipient,
            channel=channel,
            template=template,
            subject=subject,
            body=body,
            # The trace goes along, for the send's span (the dispatcher, after the commit).
            target=tracing.carried(target),
            next_attempt_at=due or utcnow(),
            created_at=utcnow(),
        )
