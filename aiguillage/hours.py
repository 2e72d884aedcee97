"""Opening hours written the way people write them: ``mon-fri 09:00-19:00; sat 09:00-12:00``."""

from __future__ import annotations

from shared.events import OpeningPeriod

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_hours(text: str) -> tuple[OpeningPeriod, ...]:
    periods: list[OpeningPeriod] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        days_text, _, times = part.partition(" ")
        opens, _, closes = times.strip().partition("-")
        if days_text in ("all", "daily", "*"):
            days = list(range(7))
        elif "-" in days_text:
            first, last = days_text.split("-")
            days = list(range(DAYS.index(first), DAYS.index(last) + 1))
        else:
            days = [DAYS.index(d) for d in days_text.split(",")]
        periods += [OpeningPeriod(weekday=d, opens=opens, closes=closes) for d in days]
    if not periods:
        raise ValueError(f"no opening hours in {text!r}")
    return tuple(periods)
