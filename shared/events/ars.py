"""Signals for the ARS: saturation and staff shortages."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import RoutingWord


class AlertKind(StrEnum):
    SATURATION = "saturation"  # next-24-hour occupancy over the threshold
    WAITING_LIST = "waiting_list"  # patients waiting for a slot
    # The forecast hours until full under the ARS's threshold (capacity.forecast).
    FORECAST = "forecast"


class ReinforcementState(StrEnum):
    """Where a centre's request for reinforcement stands (the scheduler keeps it)."""

    REQUESTED = "requested"
    ACKNOWLEDGED = "acknowledged"
    GRANTED = "granted"
    DECLINED = "declined"


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


class ReinforcementAnswer(EventPayload):
    """What an ARS says of one of its region's centres' requests for reinforcement
    (``request_id``: the ``reinforcement.requested`` event's id). Sent at the ARS's
    door, judged on the centre as the scheduler stored it, then on the bus keyed by the
    centre, whose own queue receives it."""

    request_id: str = Field(min_length=1, max_length=64)
    centre_id: RoutingWord
    # What the centre reads, in French: set by the scheduler when it puts the answer on
    # the bus (whatever the ARS sent in it is replaced).
    message: str | None = Field(None, max_length=1000)

    def routing_key(self) -> str:
        return f"{self.event_type}.{self.centre_id}"


class ReinforcementAcknowledged(ReinforcementAnswer):
    """The ARS has read the request and is working on it."""

    event_type: ClassVar[str] = "reinforcement.acknowledged"

    note: str = Field("", max_length=500)


class ReinforcementGranted(ReinforcementAnswer):
    """The ARS grants reinforcement: boxes, staff and hours (any of them zero)."""

    event_type: ClassVar[str] = "reinforcement.granted"

    boxes: int = Field(0, ge=0, le=200)
    staff: int = Field(0, ge=0, le=100)
    hours: int = Field(0, ge=0, le=10_000)
    note: str = Field("", max_length=500)


class ReinforcementDeclined(ReinforcementAnswer):
    """The ARS declines the request, and says why."""

    event_type: ClassVar[str] = "reinforcement.declined"

    reason: str = Field(min_length=1, max_length=500)


class ReinforcementRaisedAgain(EventPayload):
    """A request left without an answer for two hours, raised again to the ARS (once
    per request), keyed by département as the alerts are."""

    event_type: ClassVar[str] = "reinforcement.raised_again"

    request_id: str
    centre_id: RoutingWord
    departement: str
    count: int = Field(ge=1)
    profession: str
    requested_at: datetime

    def routing_key(self) -> str:
        return f"{self.event_type}.{self.departement}"
