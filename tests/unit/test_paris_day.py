"""A day in France as stored times are compared with it (UTC): the appointments of
23:00-24:00 UTC belong to the next Paris day, and the day the clocks change is 23 or 25
hours long."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shared.paris import paris_day_bounds


def test_a_winter_day_starts_at_23_utc_the_day_before() -> None:
    start, end = paris_day_bounds(date(2026, 12, 8))
    assert start == datetime(2026, 12, 7, 23, tzinfo=UTC)
    assert end - start == timedelta(hours=24)
    assert start.tzinfo is UTC


def test_the_days_the_clocks_change() -> None:
    spring = paris_day_bounds(date(2020, 3, 29))
    autumn = paris_day_bounds(date(2020, 10, 25))
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)
