"""Signals for the ARS: saturation and staff shortages."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import RoutingWord


class AlertKind(StrEnum):
    SATURATION = "saturation"  # next-24-hour occupancy over the threshold
    WAITING_LIST = "waiting_list"  # patients waiting for a slot


class CapacityAlert(EventPayload):
    """Saturation or a waiting list in a département, with the numbers, for the ARS.

    Raised once when its cause begins, and once more with ``cleared`` when it ends
    (the waiting list emptied, the occupancy back under the threshold): one alert per
    département and cause while it lasts."""

    event_type: ClassVar[str] = "capacity.alert"

    departement: str
    kind: AlertKind
    occupancy_next_24h: float = Field(ge=0)
    booked_next_24h: int = Field(ge=0)
    capacity_next_24h: int = Field(ge=0)
    waiting: int = Field(ge=0)
    threshold: float
    cleared: bool = False

    def routing_key(self) -> str:
        return f"{self.event_type}.{self.departement}"


class ReinforcementRequested(EventPayload):
    """A centre short of staff asks the ARS for health professionals."""

    event_type: ClassVar[str] = "reinforcement.requested"

    centre_id: RoutingWord
    count: int = Field(ge=1, le=100)
    profession: str = Field(max_length=100)
    from_date: date
    note: str = Field("", max_length=500)

    def routing_key(self) -> str:
        # The centre's id, as for what a centre reports (shared.events.consultation).
        return f"{self.event_type}.{self.centre_id}"
