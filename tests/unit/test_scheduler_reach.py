"""A slot the patient can reach (services/scheduler/domain/reach.py): the speeds by
area, the earliest start, and every candidate search honouring it. No I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.domain.assignment import Weights, rank_candidates
from services.scheduler.domain.centres import CentreSchedule, ScheduleChange
from services.scheduler.domain.policy import (
    Demand,
    PolicySettings,
    Request,
    assign_jointly,
    rank_priced,
)
from services.scheduler.domain.reach import (
    DETOUR,
    Area,
    Reach,
    area_of,
    commune_area,
    earliest_start,
    travel_minutes,
)
from services.scheduler.domain.slots import free_slots, has_place
from shared.events import OpeningPeriod, Priority
from shared.geo import commune, haversine_km

DAY = date(2020, 3, 30)
NOW = datetime(2020, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 in Paris
HERE = (48.8566, 2.3522)
W = Weights()


def centre(centre_id: str, north_km: float, boxes: int = 1, minutes: int = 5) -> CentreSchedule:
    """Open day and night: without the rule, a place starts within ``minutes`` of now."""
    return CentreSchedule(
        centre_id=centre_id,
        lat=HERE[0] + north_km / 111.2,
        lon=HERE[1],
        departement="75",
        opening_hours=tuple(
            OpeningPeriod(weekday=d, opens="00:00", closes="24:00") for d in range(7)
        ),
        boxes=boxes,
        consultation_minutes=minutes,
        first_day=DAY,
    )


def km_to(c: CentreSchedule) -> float:
    return haversine_km(HERE[0], HERE[1], c.lat, c.lon)


def kept(area: Area, lead: float, distance_km: float) -> datetime:
    """The earliest start the rule promises, from its parts (not from ``Reach``)."""
    return NOW + timedelta(minutes=lead + travel_minutes(distance_km, area))


# -- areas and speeds -------------------------------------------------------------------


def test_paris_and_the_petite_couronne_whatever_their_population() -> None:
    for departement in ("75", "92", "93", "94"):
        assert area_of(departement, 500) is Area.PARIS
        assert area_of(departement, 200_000) is Area.PARIS
    # The grande couronne is not: its towns are urban or rural by their population.
    assert area_of("77", 40_000) is Area.URBAN
    assert area_of("77", 300) is Area.RURAL


def test_urban_from_2000_inhabitants_rural_below() -> None:
    assert area_of("35", 2_000) is Area.URBAN
    assert area_of("35", 1_999) is Area.RURAL
    # No population in the data (Mayotte's communes): rural, the slower side unknown.
    assert area_of("976", 0) is Area.RURAL


def test_real_communes_by_their_area() -> None:
    cases = {
        "75115": Area.PARIS,  # Paris 15e (an arrondissement)
        "93066": Area.PARIS,  # Saint-Denis
        "35238": Area.URBAN,  # Rennes
        "69381": Area.URBAN,  # Lyon 1er (an arrondissement)
        "01002": Area.RURAL,  # Abergement-de-Varey, 248 inhabitants
    }
    for insee, area in cases.items():
        found = commune(insee)
        assert found is not None, insee
        assert commune_area(found) is area, insee


def test_travel_minutes_by_area_with_the_detour() -> None:
    # 10 km as the crow flies are 13 km of road.
    assert DETOUR == 1.3
    assert travel_minutes(10, Area.PARIS) == pytest.approx(13 / 15 * 60)  # 52 min
    assert travel_minutes(10, Area.URBAN) == pytest.approx(13 / 25 * 60)  # 31.2 min
    assert travel_minutes(10, Area.RURAL) == pytest.approx(13 / 50 * 60)  # 15.6 min
    assert travel_minutes(0, Area.PARIS) == 0
    # The same trip is slowest in Paris, fastest in the country; longer, longer.
    assert (
        travel_minutes(5, Area.PARIS)
        > travel_minutes(5, Area.URBAN)
        > travel_minutes(5, Area.RURAL)
    )
    assert travel_minutes(20, Area.URBAN) == pytest.approx(2 * travel_minutes(10, Area.URBAN))
    with pytest.raises(ValueError, match="negative"):
        travel_minutes(-1, Area.URBAN)


def test_the_earliest_start_is_now_the_lead_time_and_the_travel() -> None:
    # The case: 57 km away, booked now, a slot 1 to 5 minutes later is out of
    # reach; from a rural commune the first one kept is 30 + 88.9 minutes away.
    earliest = earliest_start(NOW, distance_km=57, area=Area.RURAL, lead_minutes=30)
    assert earliest == NOW + timedelta(minutes=30 + 57 * 1.3 / 50 * 60)
    assert earliest - NOW > timedelta(minutes=118)
    assert earliest_start(NOW, distance_km=0, area=Area.PARIS, lead_minutes=30) == NOW + (
        timedelta(minutes=30)
    )
    assert earliest_start(NOW, distance_km=0, area=Area.PARIS, lead_minutes=0) == NOW
    reach = Reach.of(Area.URBAN, 45)
    assert reach.earliest(NOW, 10) == NOW + timedelta(minutes=45 + 31.2)
    assert reach.floor(NOW) == NOW + timedelta(minutes=45)
    with pytest.raises(ValueError, match="negative"):
        Reach(lead_minutes=-1, minutes_per_km=1)
    with pytest.raises(ValueError, match="negative"):
        reach.earliest(NOW, -0.5)


# -- every search honours it --------------------------------------------------------------


def test_the_greedy_ranking_offers_nothing_before_the_patient_can_be_there() -> None:
    near, far = centre("near", 2), centre("far", 20)
    reach = Reach.of(Area.URBAN, 30)
    ranked = rank_candidates(
        patient_lat=HERE[0],
        patient_lon=HERE[1],
        now=NOW,
        deadline=NOW + timedelta(hours=6),
        centres=[near, far],
        booked={},
        weights=W,
        reach=reach,
        per_centre=3,
    )
    assert {r.centre_id for r in ranked} == {"near", "far"}
    for r in ranked:
        assert r.start >= reach.earliest(NOW, r.distance_km)
    # Each centre's first candidate is its first place from the patient's earliest there.
    first = {
        r.centre_id: min(o.start for o in ranked if o.centre_id == r.centre_id) for r in ranked
    }
    for c in (near, far):
        kept = reach.earliest(NOW, km_to(c))
        assert first[c.centre_id] == next(free_slots(c, kept, kept + timedelta(hours=1), ()))[0]
    # The far centre's places start later than the near one's: its travel is longer.
    assert first["far"] - first["near"] >= timedelta(minutes=18 * 1.3 / 25 * 60 - 5)


def test_a_centre_out_of_reach_before_the_deadline_is_no_candidate() -> None:
    near, far = centre("near", 2), centre("far", 40)
    reach = Reach.of(Area.URBAN, 30)  # 40 km: 30 + 124.8 min
    deadline = NOW + timedelta(hours=2)
    for ranked in (
        rank_candidates(
            patient_lat=HERE[0],
            patient_lon=HERE[1],
            now=NOW,
            deadline=deadline,
            centres=[near, far],
            booked={},
            weights=W,
            reach=reach,
        ),
        rank_priced(
            patient_lat=HERE[0],
            patient_lon=HERE[1],
            now=NOW,
            deadline=deadline,
            priority=Priority.ASAP,
            centres=[near, far],
            booked={},
            demand={},
            weights=W,
            policy=PolicySettings(),
            reach=reach,
        ),
    ):
        assert ranked and {c.centre_id for c in ranked} == {"near"}
    # Nothing reachable by the deadline at all: nothing (the caller waitlists).
    only_far = rank_candidates(
        patient_lat=HERE[0],
        patient_lon=HERE[1],
        now=NOW,
        deadline=deadline,
        centres=[far],
        booked={},
        weights=W,
        reach=reach,
    )
    assert only_far == []


def test_a_place_the_patient_cannot_reach_still_counts_in_the_queue() -> None:
    # A busy centre 5 km away (Paris: 26 min of travel): the places of its first 26
    # minutes after the lead time are others', and they stand ahead of this patient's
    # first place; it is priced as the policy prices a place with others ahead of it.
    c = centre("a", 5)
    reach = Reach.of(Area.PARIS, 30)
    busy = {"a": Demand(bookings=60, urgent=0)}
    ranked = rank_priced(
        patient_lat=HERE[0],
        patient_lon=HERE[1],
        now=NOW,
        deadline=NOW + timedelta(hours=6),
        priority=Priority.ROUTINE,
        centres=[c],
        booked={},
        demand=busy,
        weights=W,
        policy=PolicySettings(reserve_minutes=0),
        reach=reach,
        per_centre=2,
    )
    kept = reach.earliest(NOW, km_to(c))
    assert ranked and all(r.start >= kept for r in ranked)
    # Taking the first reachable place pushes back the others queueing for it.
    assert min(ranked, key=lambda r: r.start).price > 0


def test_a_place_nobody_can_book_in_time_any_more_is_not_priced() -> None:
    # Lead time 30: the place starting at the patient's earliest (at the centre's door)
    # can be booked by nobody else after them; as without the rule, taking it is free.
    c = centre("a", 0, minutes=30)
    reach = Reach.of(Area.PARIS, 30)
    ranked = rank_priced(
        patient_lat=HERE[0],
        patient_lon=HERE[1],
        now=NOW,
        deadline=NOW + timedelta(hours=6),
        priority=Priority.ROUTINE,
        centres=[c],
        booked={},
        demand={"a": Demand(bookings=8, urgent=0)},
        weights=W,
        policy=PolicySettings(reserve_minutes=0),
        reach=reach,
        per_centre=3,
    )
    first = min(ranked, key=lambda r: r.start)
    assert first.start >= reach.earliest(NOW, km_to(c))
    assert first.start == NOW + timedelta(minutes=30)
    assert first.price == 0
    assert any(r.price > 0 for r in ranked if r.start > first.start)


def test_a_joint_plan_gives_each_patient_a_slot_they_can_reach() -> None:
    centres = [centre("a", 0, boxes=2), centre("b", 6, boxes=2)]
    deadline = NOW + timedelta(hours=3)
    requests = [
        Request(f"paris-{i}", Priority.ROUTINE, HERE, deadline, Reach.of(Area.PARIS, 30))
        for i in range(4)
    ] + [
        Request(
            f"rural-{i}",
            Priority.ASAP,
            (HERE[0] + 0.2, HERE[1]),
            deadline,
            Reach.of(Area.RURAL, 30),
        )
        for i in range(4)
    ]
    plan = assign_jointly(requests, now=NOW, centres=centres, booked={}, weights=W)
    assert len(plan) == len(requests)
    for request in requests:
        slot = plan[request.referral_id]
        area = Area.PARIS if request.referral_id.startswith("paris") else Area.RURAL
        assert kept(area, 30, slot.distance_km) <= slot.start <= deadline


@settings(max_examples=60, deadline=None)
@given(
    lead=st.floats(0, 120),
    area=st.sampled_from(list(Area)),
    north=st.lists(st.floats(0, 59), min_size=1, max_size=5),
    minutes=st.sampled_from([5, 10, 20, 30]),
    deadline_minutes=st.integers(0, 600),
    priority=st.sampled_from([Priority.ASAP, Priority.ROUTINE]),
    demand=st.integers(0, 30),
)
def test_no_search_returns_a_slot_before_the_patient_can_be_there(
    lead: float,
    area: Area,
    north: list[float],
    minutes: int,
    deadline_minutes: int,
    priority: Priority,
    demand: int,
) -> None:
    centres = [centre(f"c{i}", km, boxes=2, minutes=minutes) for i, km in enumerate(north)]
    reach = Reach.of(area, lead)
    deadline = NOW + timedelta(minutes=deadline_minutes)
    busy = {
        c.centre_id: Demand(bookings=demand, urgent=demand // 3, few=demand // 2) for c in centres
    }
    common = {
        "patient_lat": HERE[0],
        "patient_lon": HERE[1],
        "now": NOW,
        "deadline": deadline,
        "centres": centres,
        "booked": {},
        "weights": W,
        "reach": reach,
    }
    found = [
        *rank_candidates(**common),  # type: ignore[arg-type]
        *rank_priced(**common, priority=priority, demand=busy, policy=PolicySettings()),  # type: ignore[arg-type]
    ]
    plan = assign_jointly(
        [Request(f"r{i}", priority, HERE, deadline, reach) for i in range(3)],
        now=NOW,
        centres=centres,
        booked={},
        demand=busy,
        weights=W,
    )
    for slot in [*found, *plan.values()]:
        assert kept(area, lead, slot.distance_km) <= slot.start <= deadline


# -- a place a capacity change removed ------------------------------------------------------


def test_has_place_follows_the_schedule_in_force() -> None:
    c = centre("a", 0, boxes=3, minutes=20)
    start = NOW + timedelta(minutes=40)
    assert has_place(c, start, 1) and has_place(c, start, 3)
    assert not has_place(c, start, 4)
    assert not has_place(c, start + timedelta(minutes=5), 1)  # not a slot's start
    fewer = replace(c, changes=(ScheduleChange(DAY, boxes=1),))
    assert has_place(fewer, start, 1) and not has_place(fewer, start, 2)
    longer = replace(c, changes=(ScheduleChange(DAY, consultation_minutes=30),))
    assert has_place(longer, NOW + timedelta(minutes=30), 1)
    assert not has_place(longer, start, 1)
