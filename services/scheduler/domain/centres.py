"""A centre as the scheduler sees it: where it is and when it receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.events import OpeningPeriod


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """A capacity change that applies from a local date on (``None``: unchanged)."""

    from_date: date
    boxes: int | None = None
    opening_hours: tuple[OpeningPeriod, ...] | None = None
    consultation_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class DaySchedule:
    boxes: int
    opening_hours: tuple[OpeningPeriod, ...]
    consultation_minutes: int


@dataclass(frozen=True, slots=True)
class CentreSchedule:
    centre_id: str
    lat: float
    lon: float
    departement: str
    opening_hours: tuple[OpeningPeriod, ...]
    boxes: int
    consultation_minutes: int
    first_day: date
    changes: tuple[ScheduleChange, ...] = ()
    timezone: str = "Europe/Paris"

    def on(self, day: date) -> DaySchedule:
        """The schedule in force on a local day: the latest change per field wins."""
        boxes, hours, minutes = self.boxes, self.opening_hours, self.consultation_minutes
        for change in sorted(self.changes, key=lambda c: c.from_date):
            if change.from_date > day:
                break
            boxes = change.boxes if change.boxes is not None else boxes
            hours = change.opening_hours if change.opening_hours is not None else hours
            minutes = (
                change.consultation_minutes if change.consultation_minutes is not None else minutes
            )
        return DaySchedule(boxes, hours, minutes)
