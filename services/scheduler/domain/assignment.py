"""Choosing a slot: the cost of travel and of waiting, before the patient's deadline.

cost = travel_per_km × distance_km + wait_per_minute × wait_minutes

wait_minutes runs from ``now`` to the slot's start. With the defaults (1 per km, 0.1
per minute) ten minutes of waiting weigh as much as one more kilometre: a patient is
sent 6 km further to be seen an hour sooner, not 30 km. Travel weighs more per unit
because a sick patient travels (often by taxi or a relative's car, with the risk of
contaminating them) while a patient waits at home; and the priority's deadline
already bounds how long anyone waits. The deadline is a constraint, not a cost: only
slots that start by it count at all, the cost ranks what satisfies it. So is the
patient's reach (``reach.py``): no slot starting before the patient can be there
counts, however cheap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.reach import Reach
from services.scheduler.domain.slots import free_slots
from shared.events import Priority
from shared.geo import haversine_km

T = TypeVar("T")

# The slot window is half-open; one microsecond (datetime's resolution) past the
# deadline makes a slot starting exactly at the deadline count, and nothing later.
_JUST_AFTER = timedelta(microseconds=1)


@dataclass(frozen=True)
class Weights:
    """Cost per kilometre of travel and per minute of waiting (see the module)."""

    travel_per_km: float = 1.0
    wait_per_minute: float = 0.1

    def __post_init__(self) -> None:
        # A negative weight would reward distance or waiting.
        if self.travel_per_km < 0 or self.wait_per_minute < 0:
            raise ValueError("weights must not be negative")

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
    # What taking it costs the patients likely to come after (policy.py); 0 for greedy.
    price: float = 0.0


def rank_candidates(
    *,
    patient_lat: float,
    patient_lon: float,
    now: datetime,
    deadline: datetime,
    centres: Sequence[CentreSchedule],
    booked: Mapping[str, Collection[tuple[datetime, int]]],
    weights: Weights,
    reach: Reach,
    per_centre: int = 3,
    limit: int = 10,
) -> list[Candidate]:
    """Free places starting in [earliest, deadline], best first: sorted by (cost,
    start, centre_id, box), at most ``per_centre`` from each centre and ``limit`` in
    all. ``earliest`` is the patient's at each centre (``reach.earliest``: now, the lead
    time and the travel to it).

    A centre's earliest free place dominates its later ones (same distance, more
    waiting), so one per centre would do for a single booker. A few are kept because
    the caller books under a unique constraint and, when a concurrent replica took
    the first, falls back on the next without asking again. An empty list means
    nothing fits before the deadline.
    """
    if per_centre < 1 or limit < 1:
        raise ValueError("per_centre and limit must be at least 1")
    candidates: list[Candidate] = []
    if deadline < now:
        return candidates
    for centre in centres:
        distance = haversine_km(patient_lat, patient_lon, centre.lat, centre.lon)
        earliest = reach.earliest(now, distance)
        if earliest > deadline:
            continue
        taken = booked.get(centre.centre_id, ())
        slots = free_slots(centre, earliest, deadline + _JUST_AFTER, taken)
        for start, end, box in itertools.islice(slots, per_centre):
            wait = (start - now).total_seconds() / 60
            candidates.append(
                Candidate(
                    centre_id=centre.centre_id,
                    start=start,
                    end=end,
                    box=box,
                    distance_km=distance,
                    wait_minutes=wait,
                    cost=weights.cost(distance, wait),
                )
            )
    candidates.sort(key=lambda c: (c.cost, c.start, c.centre_id, c.box))
    return candidates[:limit]


def order_patients(items: Iterable[T], key: Callable[[T], tuple[Priority, datetime]]) -> list[T]:
    """Most urgent first: priority rank, then the earliest deadline (or submission).

    Stable, so patients equal on both keep the order they came in.
    """
    keyed = [(key(item), item) for item in items]
    keyed.sort(key=lambda pair: (pair[0][0].rank, pair[0][1]))
    return [item for _, item in keyed]
