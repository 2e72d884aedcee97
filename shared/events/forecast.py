"""The saturation forecast of a département, for the ARS's own tools (issue 31)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import RoutingWord

# At most this many reserve centres are named in one forecast.
MAX_SUGGESTED = 20


class CapacityForecast(EventPayload):
    """When a département's centres will be full, and how many boxes must open where
    (services/scheduler/domain/forecast.py says how it is computed). Published every
    15 minutes and on every capacity change; no patient is in it.

    ``hours_until_full_p10/p50/p90``: hours from ``computed_at`` until a patient of some
    priority finds no free place before their deadline, at the 10th, 50th and 90th
    percentile; ``None``: not within ``horizon_hours``. ``boxes_needed_24h/72h``: boxes
    to add for every priority to be served within its deadline with 90 % probability
    over the next 24 and 72 hours; ``reserve_centres``: the declared, inactive
    centres nearest the demand that would supply them."""

    event_type: ClassVar[str] = "capacity.forecast"

    departement: RoutingWord
    computed_at: datetime
    horizon_hours: int = Field(ge=1)
    hours_until_full_p10: int | None = Field(None, ge=0)
    hours_until_full_p50: int | None = Field(None, ge=0)
    hours_until_full_p90: int | None = Field(None, ge=0)
    full_within_horizon: float = Field(ge=0, le=1)
    arrivals_per_day: float = Field(ge=0)
    growth_per_day: float
    free_places_24h: int = Field(ge=0)
    waiting: int = Field(ge=0)
    boxes_needed_24h: int = Field(ge=0)
    boxes_needed_72h: int = Field(ge=0)
    reserve_centres: list[RoutingWord] = Field(default_factory=list, max_length=MAX_SUGGESTED)
    alert_hours: float = Field(gt=0)

    def routing_key(self) -> str:
        return f"{self.event_type}.{self.departement}"
