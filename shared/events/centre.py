"""The ARS's decisions about centres."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from shared.events.base import JSON_INTEGER, EventPayload, IsoDate, JsonInt
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
    # JSON integers: never true or "3" read as one.
    boxes: JsonInt = Field(ge=1, le=200, description="Consultations held in parallel.")
    consultation_minutes: JsonInt = Field(ge=5, le=240)
    first_day: IsoDate


class CentreCapacityChanged(EventPayload):
    """The ARS ramps a centre up or down from a date (boxes, hours, length)."""

    event_type: ClassVar[str] = "centre.capacity_changed"

    centre_id: RoutingWord
    boxes: Annotated[int, Field(ge=1, le=200), JSON_INTEGER] | None = None
    opening_hours: tuple[OpeningPeriod, ...] | None = Field(None, max_length=MAX_PERIODS)
    consultation_minutes: Annotated[int, Field(ge=5, le=240), JSON_INTEGER] | None = None
    from_date: IsoDate


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
