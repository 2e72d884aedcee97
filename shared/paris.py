"""Times as people read them: Paris time, always labelled.

Events, tables and APIs keep UTC instants; whoever shows one to a person (a notice, a
command's output, a console page) converts it here, so that a centre in Rennes, a
server in UTC and a browser anywhere read the same 16h40, and know which clock it is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
# French text (notices, console) and the commands' English lines.
LABEL_FR = "heure de Paris"
LABEL_ZONE = "Europe/Paris"


def in_paris(value: datetime) -> datetime:
    """The instant on Paris's clock (a naive value is taken as UTC, as stored)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return aware.astimezone(PARIS)


def paris_fr(value: datetime, fmt: str = "%d/%m/%Y à %Hh%M") -> str:
    """``24/03/2020 à 16h40 (heure de Paris)``, for French text."""
    return f"{in_paris(value).strftime(fmt)} ({LABEL_FR})"


def paris_zone(value: datetime, fmt: str = "%d/%m %H:%M") -> str:
    """``24/03 16:40 Europe/Paris``, for the commands' lines."""
    return f"{in_paris(value).strftime(fmt)} {LABEL_ZONE}"


def paris_day_bounds(day: date) -> tuple[datetime, datetime]:
    """A day in France as a UTC interval [start, end): what stored times (UTC) are
    compared with, on SQLite as text as on PostgreSQL. 23 or 25 hours long on the days
    the clocks change."""
    start = datetime.combine(day, time(0), PARIS).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)
    return start, end
