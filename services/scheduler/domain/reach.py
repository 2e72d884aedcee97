"""A slot the patient can reach: no slot starts before the patient could be there.

    earliest start = now + lead time + travel time

**Lead time** (setting ``AIGUILLAGE_BOOKING_LEAD_MINUTES``, 30 by default): the notice
has to reach the patient (an SMS, an e-mail, the referrer's call), and the patient has
to read it, get dressed, find a taxi or a relative with a car. A slot starting a few
minutes after it is booked is a slot the patient misses, and a place lost for everyone.

**Travel time**: the road distance over a speed of the patient's area,

    travel minutes = detour × haversine km / speed (km/h) × 60

- the road is longer than the great circle: a detour factor of 1.3, the usual
  circuity of French roads over the straight line (1.2 to 1.4 between communes);
- the speed is a door-to-door mean (getting out, traffic, parking), by the area of
  the patient's commune, where the trip starts and most of its time is spent in a
  short trip (the candidate centres are the nearest ones):

  - ``paris``: Paris and the petite couronne (départements 75, 92, 93, 94),
    15 km/h: the mean speed of a car in Paris is about 14 km/h (the city's traffic
    observatory), and public transport door to door is no faster;
  - ``urban``: any other commune of at least 2,000 inhabitants, 25 km/h (city and
    suburban traffic, lights, parking);
  - ``rural``: a commune of fewer than 2,000 inhabitants, 50 km/h (departmental
    roads at 80 km/h, slowed by villages).

Urban or rural is told by the commune's own municipal population (the communes data,
``shared/geo``, has no area, so no density): 2,000 inhabitants is INSEE's threshold of
an urban unit. A commune of the suburbs under 2,000 inhabitants counts as rural, and
its patients' trips are estimated a little short; a commune with no population in the
data (Mayotte's) counts as rural too. Erring on the slow side costs a patient a few
minutes more of waiting; erring on the fast side, the appointment: the speeds are
means, not the best case.

Pure functions: the scheduler applies the rule per (patient, centre) in its candidate
search (``assignment.rank_candidates``, ``policy.rank_priced``, ``policy.assign_jointly``),
so that every path that books honours it; the deadline stays the deadline (a patient
whose only reachable slot is past it is waitlisted, as before).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from shared.geo import Commune


class Area(StrEnum):
    """Where a trip starts, for its speed (module docstring)."""

    PARIS = "paris"  # Paris and the petite couronne
    URBAN = "urban"
    RURAL = "rural"


PETITE_COURONNE = frozenset({"75", "92", "93", "94"})
# INSEE's threshold of an urban unit (module docstring).
URBAN_POPULATION = 2_000
SPEED_KMH: Mapping[Area, float] = MappingProxyType(
    {Area.PARIS: 15.0, Area.URBAN: 25.0, Area.RURAL: 50.0}
)
# Road distance over the great-circle distance.
DETOUR = 1.3
DEFAULT_LEAD_MINUTES = 30.0


def area_of(departement: str, population: int) -> Area:
    """The area of a commune of this département and municipal population."""
    if departement in PETITE_COURONNE:
        return Area.PARIS
    return Area.URBAN if population >= URBAN_POPULATION else Area.RURAL


def commune_area(place: Commune) -> Area:
    return area_of(place.departement, place.population)


def minutes_per_km(area: Area) -> float:
    """Travel minutes per kilometre of great-circle distance from this area."""
    return DETOUR / SPEED_KMH[area] * 60


def travel_minutes(distance_km: float, area: Area) -> float:
    """Estimated minutes from the patient's commune to a centre ``distance_km`` away
    (haversine) as the crow flies."""
    if distance_km < 0:
        raise ValueError("a distance is not negative")
    return distance_km * minutes_per_km(area)


def earliest_start(
    now: datetime, *, distance_km: float, area: Area, lead_minutes: float
) -> datetime:
    """The first moment a slot may start for this patient at this centre."""
    return Reach.of(area, lead_minutes).earliest(now, distance_km)


@dataclass(frozen=True, slots=True)
class Reach:
    """What one patient needs before a slot: the lead time, and their travel minutes
    per kilometre (``Reach.of`` their area). The candidate search takes one per
    patient and applies it per centre."""

    lead_minutes: float
    minutes_per_km: float

    def __post_init__(self) -> None:
        if self.lead_minutes < 0 or self.minutes_per_km < 0:
            raise ValueError("lead time and travel minutes must not be negative")

    @classmethod
    def of(cls, area: Area, lead_minutes: float = DEFAULT_LEAD_MINUTES) -> Reach:
        return cls(lead_minutes, minutes_per_km(area))

    def floor(self, now: datetime) -> datetime:
        """No slot starts before this for anyone (the lead time alone)."""
        return now + timedelta(minutes=self.lead_minutes)

    def earliest(self, now: datetime, distance_km: float) -> datetime:
        """The first start this patient can keep at a centre ``distance_km`` away."""
        if distance_km < 0:
            raise ValueError("a distance is not negative")
        travel = distance_km * self.minutes_per_km
        return now + timedelta(minutes=self.lead_minutes + travel)
