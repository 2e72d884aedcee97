"""Every notification the notifier makes: sent on the broker with the handler's
transaction, or pending for the dispatcher to send; and what they say of a referral
(its patient told of a place, or told anything at all)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store.tables import notifications
from shared.events import Channel, RecipientKind

# The notices that say a patient had a place, or waits for one: a centre's new patient
# or moved patient (recorded whatever the patient's channels), the waiting list's.
_PLACE_TEMPLATES = ("centre.new_patient", "centre.rescheduled", "patient.waitlisted")
_TOLD_OF_A_PLACE = (
    select(notifications.c.id)
    .where(
        notifications.c.referral_id == bindparam("referral_id"),
        notifications.c.template.in_(_PLACE_TEMPLATES),
    )
    .limit(1)
)
_TOLD_PATIENT = (
    select(notifications.c.id)
    .where(
        notifications.c.referral_id == bindparam("referral_id"),
        notifications.c.recipient_kind == RecipientKind.PATIENT.value,
    )
    .limit(1)
)
_INSERT_NOTIFICATION = insert(notifications)


async def add_sent(
    session: AsyncSession,
    *,
    notification_id: str,
    cause_event_id: str,
    referral_id: str | None,
    recipient_kind: RecipientKind,
    recipient: str,
    template: str,
    body: str,
    now: datetime,
) -> None:
    """A notification that travels on the broker: sent with this transaction's commit."""
    await session.execute(
        _INSERT_NOTIFICATION,
        {
            "id": notification_id,
            "cause_event_id": cause_event_id,
            "referral_id": referral_id,
            "recipient_kind": recipient_kind.value,
            "recipient": recipient,
            "channel": Channel.BROKER.value,
            "template": template,
            "body": body,
            "status": "sent",
            "attempts": 1,
            "created_at": now,
            "sent_at": now,
        },
    )


async def add_pending(
    session: AsyncSession,
    *,
    notification_id: str,
    cause_event_id: str,
    referral_id: str | None,
    recipient_kind: RecipientKind,
    recipient: str,
    channel: Channel,
    template: str,
    subject: str,
    body: str,
    target: dict[str, Any],
    next_attempt_at: datetime,
    created_at: datetime,
) -> None:
    """A notification for the outside world, for the dispatcher to send."""
    await session.execute(
        _INSERT_NOTIFICATION,
        {
            "id": notification_id,
            "cause_event_id": cause_event_id,
            "referral_id": referral_id,
            "recipient_kind": recipient_kind.value,
            "recipient": recipient,
            "channel": channel.value,
            "template": template,
            "subject": subject,
            "body": body,
            "target": target,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": next_attempt_at,
            "created_at": created_at,
        },
    )


async def told_of_a_place(session: AsyncSession, referral_id: str) -> bool:
    """The referral was booked once, or its patient told they wait (by its notices,
    found by the referral's index)."""
    found = await session.scalar(_TOLD_OF_A_PLACE, {"referral_id": referral_id})
    return found is not None


async def told_patient(session: AsyncSession, referral_id: str) -> bool:
    """The patient was sent (or is being sent) a notice about this referral."""
    return await session.scalar(_TOLD_PATIENT, {"referral_id": referral_id}) is not None
