"""The online policy (services/scheduler/domain/policy.py): prices, reserve, joint
assignment. No I/O."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from services.scheduler.domain.assignment import Weights, rank_candidates
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.policy import (
    Demand,
    PolicySettings,
    Request,
    _min_cost_assignment,
    area_loads,
    assign_jointly,
    queue_clears,
    rank_priced,
    rate_span,
    taken_by_others,
)
from services.scheduler.domain.reach import Reach
from shared.events import OpeningPeriod, Priority

DAY = date(2020, 3, 30)
NOW = datetime(2020, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 in Paris
HERE = (48.8566, 2.3522)
W = Weights()
# The patient's reach (lead time, travel) taken out: these tests are about the cost, the
# prices and the holds, on places from now on; test_scheduler_reach.py puts it back.
AT_ONCE = Reach(lead_minutes=0.0, minutes_per_km=0.0)


def centre(centre_id: str, north_km: float, boxes: int = 1) -> CentreSchedule:
    return CentreSchedule(
        centre_id=centre_id,
        lat=HERE[0] + north_km / 111.2,
        lon=HERE[1],
        departement="75",
        opening_hours=tuple(
            OpeningPeriod(weekday=d, opens="08:00", closes="20:00") for d in range(7)
        ),
        boxes=boxes,
        consultation_minutes=30,
        first_day=DAY,
    )


def rank(
    priority: Priority,
    centres: list[CentreSchedule],
    booked: dict[str, set[tuple[datetime, int]]] | None = None,
    demand: dict[str, Demand] | None = None,
    policy: PolicySettings | None = None,
    deadline: timedelta = timedelta(hours=24),
    options: int | None = None,
) -> list:  # type: ignore[type-arg]
    return rank_priced(
        patient_lat=HERE[0],
        patient_lon=HERE[1],
        now=NOW,
        deadline=NOW + deadline,
        priority=priority,
        centres=centres,
        booked=booked or {},
        demand=demand or {},
        weights=W,
        policy=policy or PolicySettings(),
        reach=AT_ONCE,
        options=options,
    )


def test_queue_clears() -> None:
    assert queue_clears(10, 0.0, 60) == 10  # nobody booked lately: no price
    assert queue_clears(10, 0.5, 60) == pytest.approx(20)  # catches up after 20 min
    assert queue_clears(10, 2.0, 60) == pytest.approx(130)  # grows for the horizon
    assert queue_clears(10, 2.0, 0) == 10  # forecast off


def test_without_demand_it_is_the_greedy_choice() -> None:
    centres = [centre("a", 1), centre("b", 3)]
    priced = rank(Priority.ROUTINE, centres)
    greedy = rank_candidates(
        patient_lat=HERE[0],
        patient_lon=HERE[1],
        now=NOW,
        deadline=NOW + timedelta(hours=24),
        centres=centres,
        booked={},
        weights=W,
        reach=AT_ONCE,
    )
    assert [(c.centre_id, c.start, c.box) for c in priced] == [
        (c.centre_id, c.start, c.box) for c in greedy
    ]
    assert all(c.price == 0 for c in priced)


def test_a_busy_centre_sends_the_patient_to_an_idle_one() -> None:
    # a is 1 km away and booked at twice its capacity lately; b, 4 km, is idle. Both
    # have their place starting now taken: the first free ones start in 30 minutes.
    centres = [centre("a", 1), centre("b", 4)]
    booked = {"a": {(NOW, 1)}, "b": {(NOW, 1)}}
    assert rank(Priority.ROUTINE, centres, booked)[0].centre_id == "a"
    busy = {"a": Demand(bookings=8, urgent=0)}  # 8 in two hours for 2 places an hour
    best = rank(Priority.ROUTINE, centres, booked, demand=busy)[0]
    assert best.centre_id == "b" and best.price == 0


def test_a_place_nobody_else_can_take_in_time_is_not_priced() -> None:
    # a's place starting now cannot be booked by anyone after this patient: taking it
    # costs nobody anything, however busy a is. Its next place, which someone else may
    # book first, is priced.
    c = centre("a", 1)
    busy = {"a": Demand(bookings=8, urgent=0)}
    ranked = rank_priced(
        patient_lat=HERE[0],
        patient_lon=HERE[1],
        now=NOW,
        deadline=NOW + timedelta(hours=24),
        priority=Priority.ROUTINE,
        centres=[c],
        booked={},
        demand=busy,
        weights=W,
        policy=PolicySettings(reserve_minutes=0),
        reach=AT_ONCE,
        per_centre=4,
    )
    by_start = sorted(ranked, key=lambda r: r.start)
    assert by_start[0].start == NOW and by_start[0].price == 0
    assert by_start[1].price > 0
    assert ranked[0].start == NOW


def test_taken_by_others() -> None:
    assert taken_by_others(0.0, 0) == 0  # nobody comes: nobody else takes it
    assert taken_by_others(2.0, 0) == pytest.approx(1 - math.exp(-2))
    assert taken_by_others(2.0, 1) == pytest.approx(1 - 3 * math.exp(-2))
    assert taken_by_others(1.0, 50) == pytest.approx(0.0, abs=1e-12)  # 50 places ahead
    assert taken_by_others(100.0, 0) == pytest.approx(1.0)


def test_rates_are_counted_over_the_span_of_the_recent_bookings() -> None:
    c, policy = centre("a", 1), PolicySettings()
    assert rate_span([c], {}, NOW, policy) == policy.rate_window_minutes
    old = {"a": Demand(4, 0, first=NOW - timedelta(hours=5))}
    assert rate_span([c], old, NOW, policy) == policy.rate_window_minutes
    fresh = {"a": Demand(4, 0, first=NOW - timedelta(minutes=40))}
    assert rate_span([c], fresh, NOW, policy) == pytest.approx(40)
    just = {"a": Demand(1, 0, first=NOW - timedelta(minutes=1))}
    assert rate_span([c], just, NOW, policy) == policy.rate_floor_minutes
    # 4 bookings in the last 40 minutes: 3 an hour, not 2 for a two-hour window.
    rho = area_loads([c], fresh, NOW, policy)["a"].rho
    assert rho == pytest.approx((4 / 40) / (1 / 30))
    # The earliest across the centres weighed: one quiet centre does not shorten it.
    d = centre("d", 2)
    both = {**fresh, "d": Demand(1, 0, first=NOW - timedelta(minutes=90))}
    assert rate_span([c, d], both, NOW, policy) == pytest.approx(90)


def test_urgent_gets_the_early_slot_over_routine() -> None:
    # One centre, its next six hours all taken but one place, urgent patients booked
    # lately: the routine patient is kept out of that place, the urgent one gets it.
    c = centre("a", 1)
    window = [s for s, _, _ in _slots(c, NOW, NOW + timedelta(hours=6))]
    booked = {"a": {(s, 1) for s in window[:-1]}}
    last = window[-1]
    demand = {"a": Demand(bookings=2, urgent=1)}
    urgent = rank(Priority.ASAP, [c], booked, demand, deadline=timedelta(hours=6))
    routine = rank(Priority.ROUTINE, [c], booked, demand)
    assert urgent[0].start == last
    assert routine and all(r.start > last for r in routine)


def test_reserve_released_when_no_urgent_comes() -> None:
    c = centre("a", 1)
    window = [s for s, _, _ in _slots(c, NOW, NOW + timedelta(hours=6))]
    booked = {"a": {(s, 1) for s in window[:-1]}}
    # No urgent booking in the rate window: nothing is held back.
    routine = rank(Priority.ROUTINE, [c], booked, {"a": Demand(bookings=2, urgent=0)})
    assert routine[0].start == window[-1]
    # And with the reserve off, neither.
    off = PolicySettings(reserve_minutes=0)
    again = rank(Priority.ROUTINE, [c], booked, {"a": Demand(bookings=2, urgent=1)}, off)
    assert again[0].start == window[-1]


def test_the_reserve_keeps_the_latest_places_not_the_earliest() -> None:
    # With places free, a routine patient still gets the first one: the reserve is the
    # end of the window, so nothing at its front goes unused.
    c = centre("a", 1)
    demand = {"a": Demand(bookings=1, urgent=1)}
    first = next(_slots(c, NOW, NOW + timedelta(hours=1)))[0]
    assert rank(Priority.ROUTINE, [c], demand=demand)[0].start == first


def _day_but_last(c: CentreSchedule, free: int) -> tuple[list[datetime], dict]:  # type: ignore[type-arg]
    # The centre's places of the few-option hold window, all booked but the last ones.
    window = [s for s, _, _ in _slots(c, NOW, NOW + timedelta(hours=12))]
    return window[-free:], {"a": {(s, 1) for s in window[:-free]}}


def test_places_few_option_patients_need_are_held_from_those_with_more() -> None:
    # One booking by a few-option patient in the window: ceil(0.7 x 720 / 120) = 5
    # places held, the last five of the day, against a patient with 40 centres in reach.
    c = centre("a", 1)
    held = math.ceil(PolicySettings().few_hold_factor * 720 / 120)
    assert held == 5
    last, booked = _day_but_last(c, held)
    demand = {"a": Demand(bookings=1, few=1)}
    day = timedelta(hours=12)
    many = rank(Priority.ASAP, [c], booked, demand, deadline=day, options=40)
    few = rank(Priority.ASAP, [c], booked, demand, deadline=day, options=3)
    assert many == []
    # The held places are theirs (the first three: rank_priced's per_centre).
    assert [r.start for r in few] == last[:3]
    # By default the options are the centres weighed: one here, a few-option patient.
    assert [r.start for r in rank(Priority.ASAP, [c], booked, demand, deadline=day)] == last[:3]
    # One place more free: only the last five are held, the sixth from last is not.
    spare, booked_spare = _day_but_last(c, held + 1)
    many_spare = rank(Priority.ASAP, [c], booked_spare, demand, deadline=day, options=40)
    assert [r.start for r in many_spare] == spare[:1]


def test_the_few_option_hold_follows_their_bookings() -> None:
    c = centre("a", 1)
    last, booked = _day_but_last(c, 3)
    day = timedelta(hours=12)
    # Bookings, none by a few-option patient: nothing held from the others.
    plain = rank(Priority.ASAP, [c], booked, {"a": Demand(bookings=5)}, deadline=day, options=40)
    assert sorted(r.start for r in plain) == last  # (priced: not in time order)
    # Few-option bookings, but the rule off (few_options 0, or no hold window).
    demand = {"a": Demand(bookings=1, few=1)}
    for off in (PolicySettings(few_options=0), PolicySettings(few_hold_minutes=0)):
        again = rank(Priority.ASAP, [c], booked, demand, off, deadline=day, options=40)
        assert sorted(r.start for r in again) == last


def test_routine_patients_are_held_from_the_urgent_few_option_places() -> None:
    # The last three places of the day, past the 6 h urgent reserve, which holds
    # nothing (its window is all booked): an urgent few-option booking in the window
    # keeps a routine patient, few-option or not, out of them for the urgent.
    c = centre("a", 1)
    last, booked = _day_but_last(c, 3)
    assert last[0] > NOW + timedelta(hours=6)
    demand = {"a": Demand(bookings=1, urgent=1, few=1, few_urgent=1)}
    for options in (2, 40):
        routine = rank(Priority.ROUTINE, [c], booked, demand, options=options)
        assert routine and all(r.start > last[-1] for r in routine)
    urgent = rank(Priority.ASAP, [c], booked, demand, deadline=timedelta(hours=12), options=2)
    assert [r.start for r in urgent] == last
    # Without the urgent few-option booking, the reserve alone lets the routine in.
    only_urgent = {"a": Demand(bookings=1, urgent=1)}
    assert rank(Priority.ROUTINE, [c], booked, only_urgent, options=2)[0].start == last[0]


def test_the_few_option_hold_keeps_the_latest_places_not_the_earliest() -> None:
    c = centre("a", 1)
    demand = {"a": Demand(bookings=1, urgent=1, few=1, few_urgent=1)}
    first = next(_slots(c, NOW, NOW + timedelta(hours=1)))[0]
    for priority in (Priority.ASAP, Priority.ROUTINE):
        assert rank(priority, [c], demand=demand, options=40)[0].start == first


def test_joint_assignment_counts_each_request_s_options() -> None:
    # A near centre whose last places are held for few-option patients, and far ones
    # (59.5 km, free now). Weighed on 16 centres the patient has more than 15 options
    # and goes far; on 15, few, and takes the near centre's held place.
    near = centre("a", 1)
    far = [centre(f"f{i:02d}", 59.5) for i in range(15)]
    _, booked = _day_but_last(near, 3)
    demand = {"a": Demand(bookings=1, few=1)}
    request = Request("r", Priority.ASAP, HERE, NOW + timedelta(hours=12), AT_ONCE)

    def placed(nearest: int) -> str:
        got = assign_jointly(
            [request],
            now=NOW,
            centres=[near, *far],
            booked=booked,
            demand=demand,
            weights=W,
            nearest=nearest,
        )
        return got["r"].centre_id

    assert placed(16) != "a"
    assert placed(15) == "a"


def test_deadlines_respected() -> None:
    centres = [centre("a", 1), centre("b", 10)]
    deadline = timedelta(hours=2)
    for priority in Priority:
        for c in rank(priority, centres, deadline=deadline):
            assert NOW <= c.start <= NOW + deadline
    requests = [Request(f"r{i}", Priority.ASAP, HERE, NOW + deadline, AT_ONCE) for i in range(20)]
    plan = assign_jointly(requests, now=NOW, centres=centres, booked={}, weights=W)
    assert all(NOW <= s.start <= NOW + deadline for s in plan.values())
    # Two centres, one box, five places each up to the deadline: 10 served, no double.
    assert len(plan) == 10
    assert len({(s.centre_id, s.start, s.box) for s in plan.values()}) == 10


def test_joint_assignment_beats_greedy_on_a_crafted_case() -> None:
    # One place each at a (here) and b (3 km north). p1, 1 km north, is 1 km from a and
    # 2 km from b; p2, 1 km south, 1 km from a and 4 km from b. One at a time, p1 takes
    # a and p2 must go to b: 1 + 4 km. Jointly p1 goes to b and p2 to a: 2 + 1 km.
    a, b = centre("a", 0), centre("b", 3)
    p1, p2 = (HERE[0] + 1 / 111.2, HERE[1]), (HERE[0] - 1 / 111.2, HERE[1])
    now = datetime(2020, 3, 30, 7, 59, tzinfo=UTC)
    only_first = datetime(2020, 3, 30, 8, 0, tzinfo=UTC)  # the 10:00 places alone
    reqs = [
        Request("p1", Priority.ROUTINE, p1, only_first, AT_ONCE),
        Request("p2", Priority.ROUTINE, p2, only_first, AT_ONCE),
    ]
    plan = assign_jointly(reqs, now=now, centres=[a, b], booked={}, weights=W)
    booked: dict[str, set[tuple[datetime, int]]] = {"a": set(), "b": set()}
    greedy = 0.0
    for r in reqs:
        best = rank_candidates(
            patient_lat=r.location[0],
            patient_lon=r.location[1],
            now=now,
            deadline=r.deadline,
            centres=[a, b],
            booked=booked,
            weights=W,
            reach=AT_ONCE,
        )[0]
        booked[best.centre_id].add((best.start, best.box))
        greedy += best.cost
    assert plan["p1"].centre_id == "b" and plan["p2"].centre_id == "a"
    assert sum(s.cost for s in plan.values()) == pytest.approx(greedy - 2, abs=0.05)


def test_joint_assignment_serves_the_urgent_first_when_not_all_fit() -> None:
    c = centre("a", 1)
    deadline = NOW + timedelta(minutes=30)  # two places: 08:00 and 08:30 UTC
    reqs = [Request(f"r{i}", Priority.ROUTINE, HERE, deadline, AT_ONCE) for i in range(3)]
    reqs.append(Request("urgent", Priority.ASAP, HERE, deadline, AT_ONCE))
    plan = assign_jointly(reqs, now=NOW, centres=[c], booked={}, weights=W)
    assert "urgent" in plan and len(plan) == 2


def test_joint_assignment_takes_plain_tuples_and_is_deterministic() -> None:
    centres = [centre(f"c{i}", i * 1.5, boxes=2) for i in range(5)]
    rng = random.Random(7)
    reqs = [
        (
            f"r{i}",
            rng.choice([Priority.ASAP, Priority.ROUTINE]),
            (HERE[0] + rng.uniform(-0.05, 0.05), HERE[1] + rng.uniform(-0.05, 0.05)),
            NOW + timedelta(hours=rng.choice([6, 24])),
            AT_ONCE,
        )
        for i in range(25)
    ]
    demand = {"c0": Demand(3, 1), "c2": Demand(5, 2)}
    first = assign_jointly(reqs, now=NOW, centres=centres, booked={}, demand=demand, weights=W)
    for _ in range(3):
        again = assign_jointly(
            list(reversed(reqs)), now=NOW, centres=centres, booked={}, demand=demand, weights=W
        )
        assert {k: (v.centre_id, v.start, v.box) for k, v in again.items()} == {
            k: (v.centre_id, v.start, v.box) for k, v in first.items()
        }
    assert len(first) == 25


def test_booked_places_are_never_given() -> None:
    c = centre("a", 1, boxes=2)
    taken = {(s, b) for s, _, b in _free(c, NOW, NOW + timedelta(hours=3))}
    plan = assign_jointly(
        [
            Request(f"r{i}", Priority.ROUTINE, HERE, NOW + timedelta(hours=24), AT_ONCE)
            for i in range(4)
        ],
        now=NOW,
        centres=[c],
        booked={"a": taken},
        weights=W,
    )
    assert all((s.start, s.box) not in taken for s in plan.values())


def test_min_cost_assignment_is_optimal_on_small_cases() -> None:
    rng = random.Random(1)
    for _ in range(200):
        n, m = rng.randint(1, 5), rng.randint(1, 6)
        cost = [[rng.randint(0, 20) for _ in range(m)] for _ in range(n)]
        rows = [[(float(cost[i][j]), j) for j in range(m)] for i in range(n)]
        owner = _min_cost_assignment(rows, m)
        got = sum(cost[i][j] for j, i in owner.items())
        size = min(n, m)
        best = min(
            sum(cost[i][j] for i, j in zip(chosen, perm, strict=True))
            for chosen in itertools.combinations(range(n), size)
            for perm in itertools.permutations(range(m), size)
            if list(chosen) == list(range(size))  # rows first come first: the first ones
        )
        assert len(owner) == size
        assert got == best


def _slots(c: CentreSchedule, start: datetime, end: datetime):  # type: ignore[no-untyped-def]
    from services.scheduler.domain.slots import slot_starts

    return slot_starts(c, start, end)


def _free(c: CentreSchedule, start: datetime, end: datetime):  # type: ignore[no-untyped-def]
    from services.scheduler.domain.slots import free_slots

    return free_slots(c, start, end, ())
