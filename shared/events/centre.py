"""The ARS's decisions about centres."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import CentreKind, OpeningPeriod


class CentreActivated(EventPayload):
    """The ARS activates a centre: where it is, when it receives, how many at once."""

    event_type: ClassVar[str] = "centre.activated"

    centre_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str
    kind: CentreKind
    commune_insee: str
    address: str | None = None
    opening_hours: tuple[OpeningPeriod, ...]
    boxes: int = Field(ge=1, le=200, description="Consultations held in parallel.")
    consultation_minutes: int = Field(ge=5, le=240)
    first_day: date


class CentreCapacityChanged(EventPayload):
    """The ARS ramps a centre up or down from a date (boxes, hours, length)."""

    event_type: ClassVar[str] = "centre.capacity_changed"

    centre_id: str
    boxes: int | None = Field(None, ge=1, le=200)
    opening_hours: tuple[OpeningPeriod, ...] | None = None
    consultation_minutes: int | None = Field(None, ge=5, le=240)
    from_date: date


class CentreSuspended(EventPayload):
    """A centre stops receiving for now; its future patients are moved or waitlisted."""

    event_type: ClassVar[str] = "centre.suspended"

    centre_id: str
    reason: str


class CentreClosed(EventPayload):
    """A centre closes for good; its future patients are moved or waitlisted."""

    event_type: ClassVar[str] = "centre.closed"

    centre_id: str
    reason: str
