"""The notifier's consumers: tell each centre of its patients."""

from __future__ import annotations

import structlog
from sqlalchemy import insert, select

from services.notifier import templates
from services.notifier.tables import contacts, notifications
from shared.consumer import Delivery
from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    Channel,
    NotificationSent,
    PatientContact,
    RecipientKind,
    SlotAssigned,
    new_id,
    utcnow,
)

log = structlog.get_logger(__name__)


class NotifierHandlers:
    async def on_assignment(self, delivery: Delivery) -> None:
        payload = delivery.envelope.payload()
        if isinstance(payload, SlotAssigned):
            body = templates.centre_new_patient(
                payload.patient_ref, payload.start, payload.priority.value, payload.box
            )
            template = "centre.new_patient"
        elif isinstance(payload, AppointmentRescheduled):
            body = templates.centre_rescheduled(
                payload.patient_ref, payload.start, payload.previous_centre_id
            )
            template = "centre.rescheduled"
        elif isinstance(payload, AppointmentCancelled):
            body = templates.centre_cancelled(payload.patient_ref, payload.start, payload.reason)
            template = "centre.cancelled"
        else:
            return
        await self._record(
            delivery,
            referral_id=payload.referral_id,
            recipient_kind=RecipientKind.CENTRE,
            recipient=payload.centre_id,
            template=template,
            body=body,
        )

    async def on_contact(self, delivery: Delivery) -> None:
        contact = delivery.payload_as(PatientContact)
        exists = await delivery.session.scalar(
            select(contacts.c.referral_id).where(contacts.c.referral_id == contact.referral_id)
        )
        if exists is None:
            await delivery.session.execute(
                insert(contacts).values(**contact.model_dump(mode="json"))
            )

    async def _record(
        self,
        delivery: Delivery,
        *,
        referral_id: str | None,
        recipient_kind: RecipientKind,
        recipient: str,
        template: str,
        body: str,
    ) -> None:
        notification_id = new_id()
        await delivery.session.execute(
            insert(notifications).values(
                id=notification_id,
                cause_event_id=delivery.envelope.id,
                referral_id=referral_id,
                recipient_kind=recipient_kind.value,
                recipient=recipient,
                channel=Channel.RECORD.value,
                template=template,
                body=body,
                status="sent",
                attempts=1,
                created_at=utcnow(),
            )
        )
        await delivery.emit(
            NotificationSent(
                notification_id=notification_id,
                referral_id=referral_id,
                recipient_kind=recipient_kind,
                recipient=recipient,
                channel=Channel.RECORD,
                template=template,
            )
        )
        log.info(
            "notification recorded",
            recipient_kind=recipient_kind.value,
            recipient=recipient,
            template=template,
        )
