"""A regulator's decision, and the protocol versions regulation applies."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import Decision, Priority, RecordId


class RegulationDecided(EventPayload):
    """A Centre 15 regulator confirms, changes or releases a held decision."""

    event_type: ClassVar[str] = "regulation.decided"

    referral_id: RecordId
    # Kept as the decision's decided_by (64) and its comment (the HTTP door's bound).
    regulator_id: str = Field(min_length=1, max_length=64)
    decision: Decision
    priority: Priority | None = None
    comment: str = Field("", max_length=2000)


class ProtocolPublished(EventPayload):
    """A new version of the regulation protocol, to apply from now on."""

    event_type: ClassVar[str] = "protocol.published"

    # As the document's own version must be (services.regulation.domain.protocol).
    protocol_version: str = Field(min_length=1, max_length=32)
    document: dict[str, Any]
