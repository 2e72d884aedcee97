"""Slots follow from opening hours, boxes and consultation length; they are computed,
not stored. Only bookings are stored (one row per centre, start and box)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from services.scheduler.domain.centres import CentreSchedule


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _require_aware(*moments: datetime) -> None:
    # A naive datetime would silently be read in the host's zone, which is not the
    # centre's and not UTC: better to refuse it than to shift every slot.
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone")


def slot_starts(
    schedule: CentreSchedule, window_start: datetime, window_end: datetime
) -> Iterator[tuple[datetime, datetime, int]]:
    """(start, end, boxes that day) of every slot starting in [window_start, window_end),
    in UTC, chronological.

    A slot lies wholly inside an opening period, and none is on a day before the
    centre's first day. Opening and closing are local wall-clock times; the slots
    between them are laid out in elapsed time, so that on a DST day a centre open
    01:00-04:00 receives for the two or four hours it is really open, and no two slots
    share an instant or last more than the consultation.
    """
    _require_aware(window_start, window_end)
    zone = ZoneInfo(schedule.timezone)
    first = max(window_start.astimezone(zone).date(), schedule.first_day)
    last = window_end.astimezone(zone).date()
    day = first
    while day <= last:
        for start, end, boxes in _day_slots(schedule, day, zone):
            if start >= window_end:
                return
            if start >= window_start:
                yield start, end, boxes
        day += timedelta(days=1)


# A centre's day is laid out once, not on every booking: each booking looks at the
# same few days of the same centres (schedules are values, equal whenever read again
# from the database; a capacity change makes another key). 512 days of up to 96 slots
# hold a few megabytes.
@lru_cache(maxsize=512)
def _day_slots(
    schedule: CentreSchedule, day: date, zone: ZoneInfo
) -> tuple[tuple[datetime, datetime, int], ...]:
    return tuple(_lay_out(schedule, day, zone))


def _lay_out(
    schedule: CentreSchedule, day: date, zone: ZoneInfo
) -> Iterator[tuple[datetime, datetime, int]]:
    in_force = schedule.on(day)
    length = timedelta(minutes=in_force.consultation_minutes)
    midnight = datetime.combine(day, time(0), zone)
    periods: list[tuple[datetime, datetime]] = []
    for period in in_force.opening_hours:
        if period.weekday != day.weekday():
            continue
        # Wall-clock arithmetic (an aware datetime plus a timedelta keeps the zone and
        # takes the offset of the wall time reached), so 24:00 is the next midnight. A
        # wall time the spring change skips maps to the instant an hour later; one the
        # autumn change repeats maps to its first occurrence (fold=0).
        opens = (midnight + timedelta(minutes=_minutes(period.opens))).astimezone(UTC)
        closes = (midnight + timedelta(minutes=_minutes(period.closes))).astimezone(UTC)
        if opens < closes:
            periods.append((opens, closes))
    for opens, closes in _merge(periods):
        start = opens
        while start + length <= closes:
            yield start, start + length, in_force.boxes
            start += length


def _merge(periods: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    # Overlapping periods (a data-entry slip) would otherwise give a box two
    # consultations at once and yield slots out of order.
    merged: list[tuple[datetime, datetime]] = []
    for opens, closes in sorted(periods):
        if merged and opens < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return merged


def free_slots(
    schedule: CentreSchedule,
    window_start: datetime,
    window_end: datetime,
    booked: Collection[tuple[datetime, int]],
) -> Iterator[tuple[datetime, datetime, int]]:
    """(start, end, box) not booked yet, boxes numbered from 1, chronological then by
    box. ``booked`` holds aware (start, box) pairs; any zone compares by instant."""
    # Membership in a list is linear; the caller may hand over whatever it has.
    taken = booked if isinstance(booked, set | frozenset) else frozenset(booked)
    for start, end, boxes in slot_starts(schedule, window_start, window_end):
        for box in range(1, boxes + 1):
            if (start, box) not in taken:
                yield start, end, box


def free_slots_latest_first(
    schedule: CentreSchedule,
    window_start: datetime,
    window_end: datetime,
    booked: Collection[tuple[datetime, int]],
) -> Iterator[tuple[datetime, datetime, int]]:
    """``free_slots`` in the reverse order (latest start first, then the higher box):
    the last few free places of a window without laying out the whole window first
    (the urgent reserve of a six-hour window of a 20-box centre is the last handful of
    its 480 places)."""
    _require_aware(window_start, window_end)
    taken = booked if isinstance(booked, set | frozenset) else frozenset(booked)
    zone = ZoneInfo(schedule.timezone)
    first = max(window_start.astimezone(zone).date(), schedule.first_day)
    day = window_end.astimezone(zone).date()
    while day >= first:
        for start, end, boxes in reversed(_day_slots(schedule, day, zone)):
            if start < window_start:
                return
            if start < window_end:
                for box in range(boxes, 0, -1):
                    if (start, box) not in taken:
                        yield start, end, box
        day -= timedelta(days=1)


def has_place(schedule: CentreSchedule, start: datetime, box: int) -> bool:
    """Whether the schedule (as it now stands) has a slot starting at ``start`` with a
    box numbered ``box``: a booking made before a capacity change may have lost it."""
    for slot_start, _, boxes in slot_starts(schedule, start, start + _INSTANT):
        if slot_start == start:
            return 1 <= box <= boxes
    return False


# The shortest window that holds a slot starting at a given instant.
_INSTANT = timedelta(microseconds=1)


def capacity_between(schedule: CentreSchedule, start: datetime, end: datetime) -> int:
    """Places (slot × box) starting in [start, end): the denominator of occupancy."""
    return sum(boxes for _, _, boxes in slot_starts(schedule, start, end))
