"""A centre's day as its page shows it: each appointment with what may be recorded now
(issue 27). The rule is shared/outcomes.py, the one the notifier's and the scheduler's
doors apply: the page offers only what they would accept, and says from when the rest
will be. The doors judge again with their own clocks; this clock only decides what the
page shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shared.outcomes import Offer, offer

# The page is read again when an action opens (the slot starts, then ends) or closes
# (the correction's 24 hours); at most this long after rendering, so that a page left
# open for a day never waits on a timer the browser may have dropped.
LONGEST_WAIT_SECONDS = 3600


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _changes(found: Offer, start: datetime, end: datetime) -> list[datetime]:
    """When what the page offers for this appointment changes next."""
    if found.awaiting:
        return [start, end]
    return [found.correctable_until] if found.correctable_until is not None else []


def with_offers(
    appointments: Iterable[Mapping[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], int | None]:
    """The appointments of the day list, each with its ``offre`` (shared.outcomes.Offer);
    and the seconds until the first of them changes (None: nothing will)."""
    shown: list[dict[str, Any]] = []
    soonest: float | None = None
    for appointment in appointments:
        start, end = _at(appointment["start"]), _at(appointment["end"])
        if start is None or end is None:
            shown.append(dict(appointment))
            continue
        found = offer(
            str(appointment.get("status", "")),
            start=start,
            end=end,
            now=now,
            recorded_at=_at(appointment.get("outcome_at")),
        )
        shown.append({**appointment, "offre": found})
        for moment in _changes(found, start, end):
            wait = (moment - now).total_seconds()
            if wait > 0 and (soonest is None or wait < soonest):
                soonest = wait
    if soonest is None:
        return shown, None
    return shown, int(min(soonest, LONGEST_WAIT_SECONDS)) + 1
