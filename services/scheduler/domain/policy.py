"""The online policy: what a slot is worth to the patients who come after, a reserve
for the urgent, and a joint assignment of the patients held at once.

Greedy nearest-first (``rank_candidates``) gives each patient the slot cheapest *for
them*. It leaves two costs to the patients after them, whom the offline optimum sees:

1. **Queueing.** A patient who takes the first free slot of a centre that others near
   it are also queueing for pushes every one of them back by a slot. The offline
   optimum sends some of the early ones a little further, to a centre whose early
   slots would otherwise go unused, and everyone waits less. The price of a slot here
   is that push, learned from the recent bookings of the centre's area: with ``rho``
   the area's booking rate over its capacity rate, the queue in front of the centre
   (its first free slot, ``f0`` minutes away) is expected to run on to

       clears = f0 + rho * min(horizon, f0 / (1 - rho))   (rho < 1: it catches up)
       clears = f0 + rho * horizon                        (rho >= 1: it grows)

   and a slot starting ``wait`` minutes from now is charged as if it started at
   ``max(wait, clears)``: every place in front of ``clears`` will be taken by someone
   who then waits longer, so taking an earlier one saves nobody anything. This is the
   dual price of a slot in the assignment problem when the queue is as forecast. A
   centre nobody booked lately has ``rho = 0``: no price, greedy as before.

2. **Deadlines.** The cost does not look at priorities, the deadline does: an urgent
   patient who arrives when a busy area's next hours are all taken by routine patients
   who could have waited gets nothing in time. So the last few free places of each
   centre before ``now + reserve_minutes`` are kept for the urgent priorities: as many
   as the urgent patients the centre's area booked in the last ``rate_window_minutes``
   predict for that window (``reserve_factor`` times). The reserve is the *latest*
   places of the window, so a routine patient still gets the early ones (nothing is
   wasted at the front), and it follows the urgent arrival rate: when no urgent patient
   came lately there is none; as the window moves, reserved places come out of it.

3. **Who else would take it.** The push of 1. only happens if someone else would have
   taken the place: a place about to start that nobody near it is likely to book in
   time is lost when this patient passes it over, and taking it costs the others
   nothing (it frees a later place for them). So each place's price is weighted by the
   chance that the centre's booking rate ``lambda`` (rho x its places per minute)
   brings, before the place starts (``wait`` minutes), more bookings than there are
   free places ahead of it: ``P(Poisson(lambda * wait) > ahead)``. Without it, in the
   first hour of a surge a patient keeps their nearest centre's later place while the
   place starting in 20 minutes 3 km away goes unused, and every place lost early
   pushes the queue back for everyone behind it (normal load, seed 2020: 54 more
   places of the first two hours left unused than by the offline optimum, about the
   whole gap in mean wait).

4. **Who has nowhere else to go.** A patient of south Seine-et-Marne has one to a few
   centres within reach; one of the inner suburbs has forty. In a surge the queues
   near Paris run hours long, so patients with many alternatives take the places of
   an outlying centre (Melun) that the few-option patients cannot replace, and those
   urgent ones then miss their deadline (the optimum sends the others elsewhere, or
   later). The 2. reserve does not stop it: it covers only the next 6 hours, while
   the places an urgent patient arriving at 10:00 needs are the 10:00-16:00 ones,
   which the morning's routine patients had taken. So each booking records how many
   candidate centres its patient had in reach (``options``: those within max_km), a
   patient with at most ``few_options`` counting as few-option, and at a centre where
   few-option patients booked lately two more sets of latest places before
   ``now + few_hold_minutes`` (12 h, the day) are held: against patients with more
   options, ``few_hold_factor`` times the few-option bookings the window's length
   predicts; against routine ones (few-option too), ``few_urgent_factor`` times the
   urgent few-option bookings it predicts. Like the reserve, these are the latest places (a
   patient still gets the early ones), they follow the rates, and where no few-option
   patient booked lately (Paris and its suburbs) nothing changes. The urgent
   few-option patient is the only one never held out. (Seeds 2020 and 2021 at surge:
   7 and 4 patients past their deadline without it, 0 with it, as the optimum.)

Rates are bookings over the minutes they were counted over: the window, or less when
the earliest of the recent bookings near the patient is more recent than the window
(``Demand.first``; the morning's first bookings after a quiet night): dividing the
first ten minutes' bookings by the whole window would price a surge at a twelfth of
its rate, and under it for the window's whole length, when the queues that last all
morning are built. The span is at least ``rate_floor_minutes``, so that the first two
bookings do not make a rate.

Where several patients are held at once (a drained waiting list, a consumer batch,
a burst), ``assign_jointly`` gives them the minimum total (priced) cost assignment over
their candidate slots, most urgent served first when not all can be.

Every search honours the patient's reach (``reach.py``): no place starting before the
patient can be there (now, the lead time, the travel to the centre) is a candidate,
for one patient or a batch; a place this patient cannot reach still counts in the
centre's queue, which others nearer it may take.

Plain functions: the caller reads the centres, the bookings and the recent demand, and
books what is returned. Nothing here moves a patient already booked.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from services.scheduler.domain.assignment import Candidate, Weights
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.reach import Reach
from services.scheduler.domain.slots import free_slots, free_slots_latest_first
from shared.events import Priority
from shared.geo import haversine_km

# Half-open slot window: one microsecond past the deadline counts a slot starting at it.
_JUST_AFTER = timedelta(microseconds=1)


@dataclass(frozen=True)
class PolicySettings:
    """The policy's parameters (settings ``AIGUILLAGE_POLICY_*``; see the module)."""

    # How far ahead the current arrival rate is assumed to go on (minutes). 0: no price.
    forecast_minutes: float = 60.0
    # The recent past the rates are learned from (minutes). Two hours: a centre has two
    # places an hour, and an hour's count of them is too noisy to price by.
    rate_window_minutes: float = 120.0
    # The shortest span a rate is counted over when the recent bookings began less than
    # a window ago (module, last paragraph).
    rate_floor_minutes: float = 20.0
    # A centre's area: the candidate centres within this distance of it share one rate,
    # so that a queue spilling over to a neighbour counts for both.
    area_km: float = 0.0
    # The window whose last places are kept for the urgent priorities (minutes; the
    # ASAP deadline). 0: no reserve.
    reserve_minutes: float = 360.0
    # Reserved places = factor x the urgent bookings the window's length predicts. The
    # three factors (0.2, 0.7, 1.0) are the safe ones with issue 27's reach: nobody past
    # their deadline whom the optimum serves at any load or seed of
    # bench/assignment_quality.py, at a higher cost than (0.5, 0.5, 0.5), which left
    # 1 and 3 late at surge (README, Performance). The reserve is the smaller: it keeps
    # routine patients out of places no urgent one may come for, where the holds below
    # keep them for the few-option patients who were late.
    reserve_factor: float = 0.2
    # A patient with at most this many candidate centres in reach (within max_km) has
    # few options (module, 4.). Fifteen: the patients past their deadline at surge had
    # 1 to 13, those who took their places more than 15. 0: no few-option holds.
    few_options: int = 15
    # The window whose latest places are held for few-option patients (minutes): the
    # day, not the 6 h of the reserve (module, 4.). 0: no few-option holds.
    few_hold_minutes: float = 720.0
    # Places held against patients with more options = factor x the bookings by
    # few-option patients the window's length predicts. Before the reach, a half was
    # enough (0.3: 3 past deadline at surge, seed 2020); with it, 0.7 (0.6 with a
    # reserve of 0.25: 1 past deadline at surge, seed 2021).
    few_hold_factor: float = 0.7
    # Places held against routine patients = factor x the urgent bookings by
    # few-option patients the window's length predicts (without it, at surge seed
    # 2020 the few-option routine ones took the places of the urgent at 14:30-16:30;
    # with the reach, at a half, routine ones took 3 of Melun's 10 places of
    # 12:00-16:30 at surge, seed 2020).
    few_urgent_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.rate_window_minutes <= 0 or self.rate_floor_minutes <= 0:
            raise ValueError("rate_window_minutes and rate_floor_minutes must be positive")
        if min(self.forecast_minutes, self.area_km, self.reserve_minutes) < 0:
            raise ValueError("policy settings must not be negative")
        if min(self.reserve_factor, self.few_hold_factor, self.few_urgent_factor) < 0:
            raise ValueError("reserve factors must not be negative")
        if self.few_options < 0 or self.few_hold_minutes < 0:
            raise ValueError("few_options and few_hold_minutes must not be negative")


@dataclass(frozen=True)
class Demand:
    """What one centre booked in the last ``rate_window_minutes``: every booking, those
    for an urgent priority (more urgent than routine), and when the earliest of them
    was booked (``None``: not known, the rate is counted over the whole window); then
    the bookings of few-option patients (at most ``few_options`` candidate centres in
    reach when they booked), and the urgent ones of them (module, 4.)."""

    bookings: int = 0
    urgent: int = 0
    first: datetime | None = None
    few: int = 0
    few_urgent: int = 0


_NO_DEMAND = Demand()


class Request(NamedTuple):
    """A patient to place: (referral, priority, (lat, lon), deadline, reach)."""

    referral_id: str
    priority: Priority
    location: tuple[float, float]
    deadline: datetime
    reach: Reach


def is_urgent(priority: Priority) -> bool:
    """More urgent than routine: what the reserve is kept for."""
    return priority.rank < Priority.ROUTINE.rank


def queue_clears(first_free_minutes: float, rho: float, horizon_minutes: float) -> float:
    """Minutes from now to when a centre's queue is expected to clear (module, 1.)."""
    if horizon_minutes <= 0 or rho <= 0:
        return first_free_minutes
    if rho < 1:
        return first_free_minutes + rho * min(horizon_minutes, first_free_minutes / (1 - rho))
    return first_free_minutes + rho * horizon_minutes


def _capacity_per_minute(centre: CentreSchedule, now: datetime) -> float:
    # The schedule in force today; a day with no slots still divides by something.
    day = centre.on(now.date())
    return day.boxes / max(1, day.consultation_minutes)


def rate_span(
    centres: Sequence[CentreSchedule],
    demand: Mapping[str, Demand],
    now: datetime,
    policy: PolicySettings,
) -> float:
    """Minutes the recent bookings of these centres were counted over (module, last
    paragraph): since the earliest of them, between ``rate_floor_minutes`` and the
    window; the window when none says when it was booked."""
    firsts = [
        seen.first
        for c in centres
        if (seen := demand.get(c.centre_id)) is not None and seen.first is not None
    ]
    if not firsts:
        return policy.rate_window_minutes
    since = (now - min(firsts)).total_seconds() / 60
    return min(policy.rate_window_minutes, max(policy.rate_floor_minutes, since))


def taken_by_others(expected: float, ahead: int) -> float:
    """P(Poisson(expected) > ahead): the chance that more bookings come, before a place
    starts, than there are free places ahead of it (module, 3.)."""
    if expected <= 0:
        return 0.0
    term = math.exp(-expected)
    below = term
    for i in range(1, ahead + 1):
        term *= expected / i
        below += term
        if i > expected and term < 1e-12:
            break  # the rest of the sum is negligible: P is ~0
    return max(0.0, 1.0 - below)


class Load(NamedTuple):
    """A centre's share of its area's recent demand (``area_loads``), per minute."""

    rho: float  # the area's bookings per minute over its places per minute
    urgent_rate: float  # urgent bookings, the centre's capacity share of the area's
    few_rate: float = 0.0  # bookings of few-option patients, likewise (module, 4.)
    few_urgent_rate: float = 0.0  # the urgent ones of them, likewise


def area_loads(
    centres: Sequence[CentreSchedule],
    demand: Mapping[str, Demand],
    now: datetime,
    policy: PolicySettings,
) -> dict[str, Load]:
    """Per centre, its area's ``Load``.

    rho: the area's bookings per minute over its places per minute. The other rates are
    the area's urgent, few-option and urgent few-option bookings per minute, shared out
    by the centre's capacity. All are counted over ``rate_span`` of these centres.
    """
    capacity = {c.centre_id: _capacity_per_minute(c, now) for c in centres}
    span = rate_span(centres, demand, now, policy)
    loads: dict[str, Load] = {}
    for centre in centres:
        booked = urgent = few = few_urgent = places = 0.0
        # area_km 0: the centre alone (and no pairwise distances to compute).
        area = centres if policy.area_km > 0 else ()
        for other in (centre, *(c for c in area if c.centre_id != centre.centre_id)):
            if other.centre_id == centre.centre_id or (
                haversine_km(centre.lat, centre.lon, other.lat, other.lon) <= policy.area_km
            ):
                seen = demand.get(other.centre_id, _NO_DEMAND)
                booked += seen.bookings
                urgent += seen.urgent
                few += seen.few
                few_urgent += seen.few_urgent
                places += capacity[other.centre_id]
        share = capacity[centre.centre_id] / places if places else 0.0
        loads[centre.centre_id] = Load(
            booked / span / places if places else 0.0,
            urgent / span * share,
            few / span * share,
            few_urgent / span * share,
        )
    return loads


def rank_priced(
    *,
    patient_lat: float,
    patient_lon: float,
    now: datetime,
    deadline: datetime,
    priority: Priority,
    centres: Sequence[CentreSchedule],
    booked: Mapping[str, Collection[tuple[datetime, int]]],
    demand: Mapping[str, Demand],
    weights: Weights,
    policy: PolicySettings,
    reach: Reach,
    per_centre: int = 3,
    limit: int = 10,
    loads: Mapping[str, Load] | None = None,
    options: int | None = None,
) -> list[Candidate]:
    """Free places starting in [earliest, deadline] that the patient may take, best
    first by priced cost (cost plus the slot's price, module 1.), then start, centre,
    box. ``earliest`` is the patient's at each centre (``reach.earliest``: now, the
    lead time, the travel to it); a centre's queue starts at the lead time alone
    (``reach.floor``), as other patients nearer it may take the places this one cannot
    reach: they are ahead of this one's places in the queue and in module 3.

    A routine patient does not see a centre's reserved places (module 2.). Each
    candidate's ``cost`` is the patient's own (travel and waiting); ``price`` is what
    it costs the patients after them, weighted by the chance that one of them would
    have taken it (module 3.).

    ``options``: how many candidate centres the patient has in reach (by default
    ``len(centres)``: the caller passes those within its max_km). One with more than
    ``few_options`` does not see the places held for few-option patients, nor does a
    routine one those held for the urgent few-option ones (module 4.).
    """
    if per_centre < 1 or limit < 1:
        raise ValueError("per_centre and limit must be at least 1")
    if deadline < now:
        return []
    if loads is None:
        loads = area_loads(centres, demand, now, policy)
    urgent = is_urgent(priority)
    # Module 4.: the few-option holds, against patients with more options (at the
    # few-option booking rate) and against routine ones (at its urgent part).
    many = (len(centres) if options is None else options) > policy.few_options
    ask = _Ask(
        lat=patient_lat,
        lon=patient_lon,
        now=now,
        deadline=deadline,
        urgent=urgent,
        hold_factors=(
            policy.few_hold_factor if many else 0.0,
            0.0 if urgent else policy.few_urgent_factor,
        ),
        weights=weights,
        policy=policy,
        reach=reach,
        per_centre=per_centre,
    )
    ranked = [
        (candidate.cost + candidate.price, candidate)
        for centre in centres
        for candidate in _centre_candidates(
            ask, centre, loads[centre.centre_id], booked.get(centre.centre_id, ())
        )
    ]
    ranked.sort(key=lambda pair: (pair[0], pair[1].start, pair[1].centre_id, pair[1].box))
    return [candidate for _, candidate in ranked[:limit]]


class _Ask(NamedTuple):
    """One patient's search, as ``rank_priced`` was asked it."""

    lat: float
    lon: float
    now: datetime
    deadline: datetime
    urgent: bool
    hold_factors: tuple[float, float]
    weights: Weights
    policy: PolicySettings
    reach: Reach
    per_centre: int


def _holds(ask: _Ask, load: Load) -> list[tuple[datetime, int]]:
    """The latest places of each window kept from this patient: (window end, count)."""
    policy, now = ask.policy, ask.now
    _, urgent_rate, few_rate, few_urgent_rate = load
    holds = []
    if not ask.urgent and policy.reserve_minutes > 0 and urgent_rate > 0:
        keep = math.ceil(policy.reserve_factor * urgent_rate * policy.reserve_minutes)
        holds.append((now + timedelta(minutes=policy.reserve_minutes), keep))
    hold = policy.few_hold_minutes if policy.few_options > 0 else 0.0
    if hold > 0 and (few_rate > 0 or few_urgent_rate > 0):
        held_rate = max(ask.hold_factors[0] * few_rate, ask.hold_factors[1] * few_urgent_rate)
        if held_rate > 0:
            holds.append((now + timedelta(minutes=hold), math.ceil(held_rate * hold)))
    return holds


def _centre_candidates(
    ask: _Ask, centre: CentreSchedule, load: Load, booked: Collection[tuple[datetime, int]]
) -> Iterator[Candidate]:
    """The first ``per_centre`` places of one centre the patient may take, priced."""
    now, reach = ask.now, ask.reach
    distance = haversine_km(ask.lat, ask.lon, centre.lat, centre.lon)
    earliest = reach.earliest(now, distance)
    if earliest > ask.deadline:
        return  # the patient cannot be there in time
    taken = booked if isinstance(booked, set | frozenset) else frozenset(booked)
    slots = free_slots(centre, reach.floor(now), ask.deadline + _JUST_AFTER, taken)
    front = next(slots, None)
    if front is None:
        return
    holds = _holds(ask, load)
    held = _held(centre, front[0], taken, holds) if holds else set()
    # The queue's front is the centre's first free place, reserved or not, and its
    # backlog what lies beyond the lead time (nobody books a place sooner than that:
    # those minutes are no queue).
    rho = load.rho
    lead = reach.lead_minutes
    backlog = (front[0] - now).total_seconds() / 60 - lead
    clears = lead + queue_clears(backlog, rho, ask.policy.forecast_minutes)
    usable = (slot for slot in itertools.chain((front,), slots) if (slot[0], slot[2]) not in held)
    # The centre's bookings per minute (its area's rate, shared by capacity).
    rate = rho * _capacity_per_minute(centre, now)
    for ahead, (start, end, box) in _reachable(usable, earliest, ask.per_centre):
        wait = (start - now).total_seconds() / 60
        cost = ask.weights.cost(distance, wait)
        price = ask.weights.wait_per_minute * max(0.0, clears - wait)
        if price > 0:
            # Another patient books it up to its lead time before it starts.
            price *= taken_by_others(rate * max(0.0, wait - lead), ahead)
        yield Candidate(
            centre_id=centre.centre_id,
            start=start,
            end=end,
            box=box,
            distance_km=distance,
            wait_minutes=wait,
            cost=cost,
            price=price,
        )


def _reachable(
    usable: Iterable[tuple[datetime, datetime, int]], earliest: datetime, count: int
) -> Iterator[tuple[int, tuple[datetime, datetime, int]]]:
    """The first ``count`` places starting from ``earliest``, each with the number of
    usable places ahead of it in the centre's queue (those before ``earliest`` too:
    patients nearer the centre may take them)."""
    if count < 1:
        return
    found = 0
    for ahead, slot in enumerate(usable):
        if slot[0] >= earliest:
            yield ahead, slot
            found += 1
            if found == count:
                return


def _held(
    centre: CentreSchedule,
    since: datetime,
    taken: Collection[tuple[datetime, int]],
    holds: Sequence[tuple[datetime, int]],
) -> set[tuple[datetime, int]]:
    """The union, over ``holds`` (window end, count), of each window's latest ``count``
    free places from ``since`` (the centre's first free place). Each window is read
    back from its own end, so the work is the places held, not the longest window's
    places (a 12-hour hold beside a 6-hour reserve at a 20-box centre: 480 places)."""
    held: set[tuple[datetime, int]] = set()
    for end, count in holds:
        if end > since and count > 0:
            latest = free_slots_latest_first(centre, since, end, taken)
            held.update((start, box) for start, _, box in itertools.islice(latest, count))
    return held


def assign_jointly(
    requests: Sequence[Request | tuple[str, Priority, tuple[float, float], datetime, Reach]],
    *,
    now: datetime,
    centres: Sequence[CentreSchedule],
    booked: Mapping[str, Collection[tuple[datetime, int]]],
    demand: Mapping[str, Demand] | None = None,
    weights: Weights,
    policy: PolicySettings | None = None,
    nearest: int = 8,
    max_km: float = 60.0,
    per_centre: int | None = None,
    limit: int | None = None,
) -> dict[str, Candidate]:
    """Referral id -> slot for a batch held at once: the assignment of least total
    priced cost over each request's candidates (``rank_priced``: by default as many
    places per centre as the batch has requests, so that one centre could take them
    all), no slot given twice.

    Requests are taken most urgent first (priority, deadline, then referral id), each
    added by a shortest augmenting path that may move the ones before it to other
    slots of theirs but never leaves one of them without: when the batch cannot all be
    placed, the more urgent keep theirs. A request absent from the answer has no slot
    in reach before its deadline (or lost it to more urgent ones). Deterministic, and
    whatever order the batch comes in: ties fall to the referral id, then the earlier
    start, centre id, box.

    ``centres`` are the candidate centres of the whole batch (the union of each
    request's nearest); each request is weighed on its ``nearest`` of them within
    ``max_km``, as ``rank_priced`` would be for it alone, with its own ``reach``.
    """
    policy = policy or PolicySettings()
    demand = demand or {}
    ordered = sorted(
        (Request(*r) for r in requests),
        key=lambda r: (r.priority.rank, r.deadline, r.referral_id),
    )
    places = per_centre or max(1, len(ordered))
    loads = area_loads(centres, demand, now, policy)
    slot_index: dict[tuple[str, datetime, int], int] = {}
    edges: list[list[tuple[float, int, Candidate]]] = []
    for request in ordered:
        ranked = _request_candidates(
            request,
            now=now,
            centres=centres,
            booked=booked,
            demand=demand,
            weights=weights,
            policy=policy,
            nearest=nearest,
            max_km=max_km,
            places=places,
            limit=limit or places * max(1, nearest),
            loads=loads,
        )
        edges.append(
            [
                (
                    c.cost + c.price,
                    slot_index.setdefault((c.centre_id, c.start, c.box), len(slot_index)),
                    c,
                )
                for c in ranked
            ]
        )
    owner = _min_cost_assignment(
        [[(cost, j) for cost, j, _ in row] for row in edges], len(slot_index)
    )
    result: dict[str, Candidate] = {}
    for j, i in owner.items():
        for _, slot, candidate in edges[i]:
            if slot == j:
                result[ordered[i].referral_id] = candidate
                break
    return result


def _request_candidates(
    request: Request,
    *,
    now: datetime,
    centres: Sequence[CentreSchedule],
    booked: Mapping[str, Collection[tuple[datetime, int]]],
    demand: Mapping[str, Demand],
    weights: Weights,
    policy: PolicySettings,
    nearest: int,
    max_km: float,
    places: int,
    limit: int,
    loads: Mapping[str, Load],
) -> list[Candidate]:
    """One request's candidates in a batch: ``rank_priced`` on its ``nearest`` centres
    within ``max_km``, as it would be for the request alone."""
    lat, lon = request.location
    within = sorted(
        (d, c.centre_id, c)
        for c in centres
        if (d := haversine_km(lat, lon, c.lat, c.lon)) <= max_km
    )
    return rank_priced(
        patient_lat=lat,
        patient_lon=lon,
        now=now,
        deadline=request.deadline,
        priority=request.priority,
        centres=[c for _, _, c in within[:nearest]],
        booked=booked,
        demand=demand,
        weights=weights,
        policy=policy,
        reach=request.reach,
        per_centre=places,
        limit=limit,
        loads=loads,
        options=min(len(within), nearest),
    )


def _min_cost_assignment(rows: list[list[tuple[float, int]]], columns: int) -> dict[int, int]:
    """Column -> row: successive shortest augmenting paths with potentials (Dijkstra on
    reduced costs ``cost - u[row] - v[column]``, kept non-negative), rows added in
    order; a row with no augmenting path stays out and those before it keep a column.
    Sparse: a row's own edges only, so a batch costs what its candidates are."""
    owner: dict[int, int] = {}  # column -> row
    column_of: dict[int, int] = {}  # row -> column
    u = [0.0] * len(rows)
    v = [0.0] * columns
    for start in range(len(rows)):
        # Alternating paths from ``start``: row -> column by an edge, column -> the row
        # that holds it (a matched edge, reduced cost 0). A free column ends the path.
        dist: dict[int, float] = {}
        parent: dict[int, int] = {}  # column -> the row it was reached from
        row_dist = {start: 0.0}
        heap: list[tuple[float, int]] = []
        for cost, column in rows[start]:
            reduced = cost - u[start] - v[column]
            if column not in dist or reduced < dist[column]:
                dist[column], parent[column] = reduced, start
                heapq.heappush(heap, (reduced, column))
        settled: list[int] = []
        done: set[int] = set()
        end: int | None = None
        while heap:
            d, column = heapq.heappop(heap)
            if column in done or d > dist[column]:
                continue
            done.add(column)
            settled.append(column)
            holder = owner.get(column)
            if holder is None:
                end = column
                break
            if holder in row_dist:
                continue
            row_dist[holder] = d
            for cost, nxt in rows[holder]:
                reduced = d + cost - u[holder] - v[nxt]
                if nxt not in done and (nxt not in dist or reduced < dist[nxt]):
                    dist[nxt], parent[nxt] = reduced, holder
                    heapq.heappush(heap, (reduced, nxt))
        if end is None:
            continue  # nothing free within reach: this row stays out
        total = dist[end]
        for row, d in row_dist.items():
            u[row] += total - d
        for column in settled:
            v[column] -= total - dist[column]
        column = end
        while True:
            row = parent[column]
            previous = column_of.get(row)
            owner[column], column_of[row] = row, column
            if previous is None:
                break
            column = previous
    return owner
