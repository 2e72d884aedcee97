"""Slots follow from opening hours, boxes and consultation length; they are computed,
not stored. Only bookings are stored (one row per centre, start and box)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.scheduler.domain.centres import CentreSchedule


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def slot_starts(
    schedule: CentreSchedule, window_start: datetime, window_end: datetime
) -> Iterator[tuple[datetime, datetime, int]]:
    """(start, end, boxes) of every slot starting in [window_start, window_end), in UTC,
    chronological. A slot lies wholly inside an opening period."""
    zone = ZoneInfo(schedule.timezone)
    first = max(window_start.astimezone(zone).date(), schedule.first_day)
    last = window_end.astimezone(zone).date()
    day = first
    while day <= last:
        yield from _day_slots(schedule, day, zone, window_start, window_end)
        day += timedelta(days=1)


def _day_slots(
    schedule: CentreSchedule,
    day: date,
    zone: ZoneInfo,
    window_start: datetime,
    window_end: datetime,
) -> Iterator[tuple[datetime, datetime, int]]:
    in_force = schedule.on(day)
    length = in_force.consultation_minutes
    periods = sorted(
        (_minutes(p.opens), _minutes(p.closes))
        for p in in_force.opening_hours
        if p.weekday == day.weekday()
    )
    midnight = datetime.combine(day, time(0), zone)
    for opens, closes in periods:
        minute = opens
        while minute + length <= closes:
            # Adding to an aware datetime is wall-clock arithmetic, and the zone gives
            # each wall time its own offset: correct across DST changes.
            local = midnight + timedelta(minutes=minute)
            start = local.astimezone(UTC)
            end = (local + timedelta(minutes=length)).astimezone(UTC)
            minute += length
            if start < window_start:
                continue
            if start >= window_end:
                return
            yield start, end, in_force.boxes


def free_slots(
    schedule: CentreSchedule,
    window_start: datetime,
    window_end: datetime,
    booked: Collection[tuple[datetime, int]],
) -> Iterator[tuple[datetime, datetime, int]]:
    """(start, end, box) not booked yet, chronological then by box."""
    for start, end, boxes in slot_starts(schedule, window_start, window_end):
        for box in range(1, boxes + 1):
            if (start, box) not in booked:
                yield start, end, box


def capacity_between(schedule: CentreSchedule, start: datetime, end: datetime) -> int:
    """Places (slot × box) starting in [start, end)."""
    return sum(boxes for _, _, boxes in slot_starts(schedule, start, end))
