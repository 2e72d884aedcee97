"""What the notifier sent, or failed to send."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import RecordId


class RecipientKind(StrEnum):
    CENTRE = "centre"
    REFERRER = "referrer"
    PATIENT = "patient"
    CENTRE_15 = "centre_15"
    ONCALL = "oncall"  # the ARS's on-call of a département (its alerts)


class Channel(StrEnum):
    BROKER = "broker"
    WEBHOOK = "webhook"
    SMS = "sms"
    EMAIL = "email"
    RECORD = "record"  # kept in a table and the log, for demos


class NotificationSent(EventPayload):
    """Someone was told (recipient by id or pseudonym, never by contact details)."""

    event_type: ClassVar[str] = "notification.sent"

    notification_id: str
    referral_id: RecordId | None
    recipient_kind: RecipientKind
    recipient: str  # a centre id, a referrer id, a patient_ref: never contact details
    channel: Channel
    template: str
    attempts: int = 1
    # An SMS's length as operators bill it (GSM 03.38 or UCS-2 segments): a count, never
    # the text. Added in 0.3.0, so older producers leave it out.
    segments: int | None = None


class NotificationFailed(EventPayload):
    """A send failed; ``final`` once the retries are spent."""

    event_type: ClassVar[str] = "notification.failed"

    notification_id: str
    referral_id: RecordId | None
    recipient_kind: RecipientKind
    recipient: str
    channel: Channel
    template: str
    attempts: int
    error: str
    final: bool
    error_code: str | None = Field(
        None,
        description="Why it was not sent, when the notifier refused to send it: "
        "contact_quota, channel_not_allowed, webhook_not_https, webhook_forbidden_address...",
    )
