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
        """The envelope of ``payload``, at the version this process emits of its type
        (optional fields that are None left out: ``shared.events.versions.emitted_data``)."""
        from shared.events.versions import emitted_data

        version, data = emitted_data(payload, source)
        return cls(
            id=event_id or new_id(),
            type=payload.event_type,
            version=version,
            time=time or utcnow(),
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            data=data,
        )

    def payload(self, *, tolerant: bool = False) -> EventPayload:
        """Parse ``data`` into the registered payload class (raises on unknown or invalid);
        a version the catalogue lacks is read as the newest it has of the type
        (``shared.events.versions.read_as``).

        ``tolerant``: ignore unknown fields (a reader on the bus); strict by default (a
        door: an outsider's unknown field is refused)."""
        from shared.events.registry import UnknownEventError, newest_class, payload_class
        from shared.events.versions import read_as

        try:
            cls = payload_class(self.type, self.version)
        except UnknownEventError:
            cls = newest_class(self.type)
        return read_as(self.type, self.version, self.data, cls, tolerant=tolerant)

    def payload_as(self, cls: builtins.type[P], *, tolerant: bool = False) -> P:
        """``data`` as ``cls``, the version the reader handles: an older version upcast,
        a newer one read as it if it validates as it (``shared.events.versions``)."""
        from shared.events.versions import read_as

        return read_as(self.type, self.version, self.data, cls, tolerant=tolerant)
