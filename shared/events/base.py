"""The envelope every event travels in, and the base class of event payloads.

On the wire an event is one JSON document: the envelope's fields, with the
payload under ``data``. The payload's class is found from ``type`` and
``version`` in the registry, so a consumer can read any version it knows.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

P = TypeVar("P", bound="EventPayload")


def _iso_date(value: object) -> object:
    # pydantic's lax mode reads a number as days since 1970: the schema says an ISO
    # date string, and a number there is a sender's mistake, not a date.
    if isinstance(value, bool | int | float):
        raise ValueError("a date is an ISO 8601 string (YYYY-MM-DD)")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
"""A date, given as ``YYYY-MM-DD`` in JSON (or a ``date``), never as a number."""


def _json_integer(value: object) -> object:
    # JSON Schema's integer: 3 or 3.0, never true (a bool is an int in Python) nor "3",
    # which pydantic's lax mode would take.
    if isinstance(value, bool | str | bytes):
        raise ValueError("an integer is a JSON number")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
JsonInt = Annotated[int, JSON_INTEGER]
"""An integer as JSON Schema means it (``3``, ``3.0``), never a boolean or a string.
Where it is optional, write ``Annotated[int, Field(ge=...), JSON_INTEGER] | None``: the
bounds before the validator, or the JSON schema loses them (``ge`` for ``minimum``)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class EventPayload(BaseModel):
    """Base of every event payload: subclasses set ``event_type`` and ``version``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    version: ClassVar[int] = 1

    def routing_key(self) -> str:
        """Routing key on the events exchange; per-centre events override it."""
        return self.event_type


class Envelope(BaseModel):
    """Metadata common to every event (id, type, version, time, source, causality)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Bounded by the columns that keep them (the inbox's event_id and event_type, the
    # outbox's correlation_id...): tests/unit/test_bounds.py.
    id: str = Field(
        default_factory=new_id,
        min_length=1,
        max_length=36,
        description="Unique id of this event (UUID).",
    )
    type: str = Field(
        description="Event type, e.g. referral.received.", min_length=1, max_length=100
    )
    version: int = Field(1, ge=1, description="Schema version of the payload.")
    time: datetime = Field(default_factory=utcnow, description="When the event was produced.")
    source: str = Field(description="Producing service or actor.", min_length=1, max_length=100)
    correlation_id: str = Field(
        max_length=64, description="The referral (or centre) the event belongs to."
    )
    causation_id: str | None = Field(
        None, max_length=64, description="Id of the event that caused this one."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The payload.")

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        source: str,
        correlation_id: str,
        causation_id: str | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> Self:
        return cls(
            id=event_id or new_id(),
            type=payload.event_type,
            version=payload.version,
            time=time or utcnow(),
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            data=payload.model_dump(mode="json"),
        )

    def payload(self) -> EventPayload:
        """Parse ``data`` into the registered payload class (raises on unknown or invalid)."""
        from shared.events.registry import payload_class

        return payload_class(self.type, self.version).model_validate(self.data)

    def payload_as(self, cls: builtins.type[P]) -> P:
        if (self.type, self.version) != (cls.event_type, cls.version):
            raise ValueError(
                f"expected {cls.event_type} v{cls.version}, got {self.type} v{self.version}"
            )
        return cls.model_validate(self.data)
