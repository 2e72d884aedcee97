"""Answers to every submission on the broker, in the manner of the SAMU's Hub Santé:
an acknowledgement or an error that names the message it answers."""

from __future__ import annotations

from typing import ClassVar

from shared.events.base import EventPayload
from shared.events.vocabulary import Reason, RecordId


class _Reply(EventPayload):
    reply_to: str

    def routing_key(self) -> str:
        return f"reply.{self.reply_to}.{self.event_type}"


class SubmissionAcknowledged(_Reply):
    """A submission was accepted: here is the referral id."""

    event_type: ClassVar[str] = "submission.acknowledged"

    source_message_id: str
    referral_id: RecordId
    reference: str
    duplicate: bool = False


class SubmissionError(_Reply):
    """A submission was refused: error code, cause, and the message it answers."""

    event_type: ClassVar[str] = "submission.error"

    source_message_id: str | None
    reference: str | None = None
    referral_id: RecordId | None = None
    error_code: str
    cause: str
    reasons: tuple[Reason, ...] = ()


class RequestRefused(_Reply):
    """A message a door did not apply: its claims disagree with its sender (the AMQP
    user), or its sender may not send it. Like Hub Santé's error 200 (sender
    inconsistency): the code, the cause, and the id of the message it answers. The
    cause names fields, never their values."""

    event_type: ClassVar[str] = "request.refused"

    source_message_id: str | None
    refused_type: str | None = None
    error_code: str
    cause: str
