"""Choosing a slot: the cost of travel and of waiting, before the patient's deadline.

cost = travel_weight × distance_km + wait_weight × wait_minutes

With the defaults (1 per km, 0.1 per minute) ten minutes of waiting weigh as much as
one more kilometre: a patient is sent 6 km further to be seen an hour sooner, not
30 km. Only slots that start before the deadline of the patient's priority count at
all: the deadline is a constraint, the cost ranks what satisfies it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.slots import free_slots
from shared.events import Priority
from shared.geo import haversine_km

T = TypeVar("T")


@dataclass(frozen=True)
class Weights:
    travel_per_km: float = 1.0
    wait_per_minute: float = 0.1

    def cost(self, distance_km: float, wait_minutes: float) -> float:
        return self.travel_per_km * distance_km + self.wait_per_minute * wait_minutes


@dataclass(frozen=True)
class Candidate:
    centre_id: str
    start: datetime
    end: datetime
    box: int
    distance_km: float
    wait_minutes: float
    cost: float


def rank_candidates(
    *,
    patient_lat: float,
    patient_lon: float,
    now: datetime,
    deadline: datetime,
    centres: Sequence[CentreSchedule],
    booked: Mapping[str, Collection[tuple[datetime, int]]],
    weights: Weights,
    per_centre: int = 3,
    limit: int = 10,
) -> list[Candidate]:
    """The best free slots, best first.

    A centre's earliest free slot dominates its later ones (same distance, more
    waiting), but a few per centre are kept: the caller falls back on them when a
    concurrent booking took the first.
    """
    candidates: list[Candidate] = []
    window_end = deadline + timedelta(seconds=1)
    for centre in centres:
        distance = haversine_km(patient_lat, patient_lon, centre.lat, centre.lon)
        slots = free_slots(centre, now, window_end, booked.get(centre.centre_id, ()))
        for start, end, box in itertools.islice(slots, per_centre):
            if start > deadline:
                break
            wait = (start - now).total_seconds() / 60
            candidates.append(
                Candidate(
                    centre.centre_id, start, end, box, distance, wait, weights.cost(distance, wait)
                )
            )
    candidates.sort(key=lambda c: (c.cost, c.start, c.centre_id, c.box))
    return candidates[:limit]


def order_patients(items: Iterable[T], key: Callable[[T], tuple[Priority, datetime]]) -> list[T]:
    """Most urgent first: priority, then the earliest deadline."""
    return sorted(items, key=lambda item: (key(item)[0].rank, key(item)[1]))
