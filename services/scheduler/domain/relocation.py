"""A booked patient now elsewhere (``patient.relocated``, issue 36): moved nearer, or
left where they are. Pure: the handler gives the appointment, the patient's distance to
its centre from the new commune, and the free places ranked for them (which honour the
reach rule, ``reach.py``: none starts before the patient could be there).

The rule: an appointment not yet due moves to a slot that starts no later (the patient
never waits longer for being nearer) at a centre strictly nearer the new commune. A
slot as near, or later, is no gain worth a second notice; an appointment due (started,
or starting now) is kept: the patient may be on their way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.scheduler.domain.assignment import Candidate
from services.scheduler.domain.centres import CentreSchedule
from shared.geo import haversine_km


def due(start: datetime, now: datetime) -> bool:
    """The appointment has begun (or begins now): never moved."""
    return start <= now


def nearer(
    start: datetime, distance_km: float, now: datetime, candidates: Sequence[Candidate]
) -> list[Candidate]:
    """The places worth a move, in the given (ranking) order: starting no later than
    ``start``, strictly nearer than ``distance_km``; none when the appointment is due."""
    if due(start, now):
        return []
    return [c for c in candidates if c.start <= start and c.distance_km < distance_km]


def closer_centres(
    schedules: Sequence[CentreSchedule], lat: float, lon: float, distance_km: float
) -> list[CentreSchedule]:
    """The centres strictly nearer (lat, lon) than ``distance_km``: the only ones worth
    ranking for a move, so that a farther centre's better places never crowd out a
    nearer one's from the ranking's few."""
    return [c for c in schedules if haversine_km(lat, lon, c.lat, c.lon) < distance_km]
