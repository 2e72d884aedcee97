"""A regulator's decision, and the protocol versions regulation applies."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import Decision, Priority


class RegulationDecided(EventPayload):
    """A Centre 15 regulator confirms, changes or releases a held decision."""

    event_type: ClassVar[str] = "regulation.decided"

    referral_id: str
    regulator_id: str = Field(min_length=1)
    decision: Decision
    priority: Priority | None = None
    comment: str = ""


class ProtocolPublished(EventPayload):
    """A new version of the regulation protocol, to apply from now on."""

    event_type: ClassVar[str] = "protocol.published"

    protocol_version: str
    document: dict[str, Any]
