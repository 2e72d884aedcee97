"""The ARS's decisions about centres."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import CentreKind, InseeCode, OpeningPeriod, RoutingWord

# A week of split shifts, with room to spare.
MAX_PERIODS = 50


class CentreActivated(EventPayload):
    """The ARS activates a centre: where it is, when it receives, how many at once."""

    event_type: ClassVar[str] = "centre.activated"

    centre_id: RoutingWord
    name: str = Field(min_length=1, max_length=200)
    kind: CentreKind
    commune_insee: InseeCode
    address: str | None = Field(None, max_length=300)
    opening_hours: tuple[OpeningPeriod, ...] = Field(max_length=MAX_PERIODS)
    boxes: int = Field(ge=1, le=200, description="Consultations held in parallel.")
    consultation_minutes: int = Field(ge=5, le=240)
    first_day: date


class CentreCapacityChanged(EventPayload):
    """The ARS ramps a centre up or down from a date (boxes, hours, length)."""

    event_type: ClassVar[str] = "centre.capacity_changed"

    centre_id: RoutingWord
    boxes: int | None = Field(None, ge=1, le=200)
    opening_hours: tuple[OpeningPeriod, ...] | None = Field(None, max_length=MAX_PERIODS)
    consultation_minutes: int | None = Field(None, ge=5, le=240)
    from_date: date


class CentreSuspended(EventPayload):
    """A centre stops receiving for now; its future patients are moved or waitlisted."""

    event_type: ClassVar[str] = "centre.suspended"

    centre_id: RoutingWord
    reason: str = Field(max_length=500)


class CentreClosed(EventPayload):
    """A centre closes for good; its future patients are moved or waitlisted."""

    event_type: ClassVar[str] = "centre.closed"

    centre_id: RoutingWord
    reason: str = Field(max_length=500)
