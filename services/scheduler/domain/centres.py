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
    """An active centre: its place, its base schedule from ``first_day`` on, and the
    ARS's later changes. Hours are local wall-clock times in ``timezone``."""

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
        """The schedule in force on a local day: per field, the change with the latest
        ``from_date`` not after ``day`` wins; on the same date, the later in ``changes``
        (the caller passes them in the order they were recorded)."""
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
