"""How close the scheduler's online assignment comes to the best possible one.

A reproducible Île-de-France scenario: the 155 centres of 29 March 2020 per
département (seeds), placed in populous communes; patients drawn in proportion to
commune population, arriving over a morning (four hours), each with a priority and
its deadline, at three loads (light, normal, surge) and several seeds.

The online side is the scheduler's own domain, as the live path calls it: arrivals
are held for ``--batch-seconds`` (what the scheduler holds at once: a consumer batch);
as the scheduler's consumer does, the first ``JOINT_BATCH`` of a batch are planned by
``policy.assign_jointly``, then each books its planned place if still free, or its own
choice by ``policy.rank_priced`` (a batch of one: that alone), both priced by each
centre's recent bookings (``policy.Demand``) and with the settings' defaults. The
greedy line is the previous rule (``rank_candidates``, one patient at a time), for
reference. The offline optimum sees every patient at once and solves the assignment
problem on the same cost (travel and waiting, same weights) and the same slots, with
scipy.optimize.linear_sum_assignment. Both sides honour the same reach
(``domain/reach.py``): no slot starts before the patient's arrival (the optimum) or the
batch's answer (online) + ``--lead-minutes`` + the travel from the patient's commune,
at the speed of its area, to that centre.

    python bench/assignment_quality.py [--seeds 2020 2021 2022] [--loads 600 1500 3000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.optimize import linear_sum_assignment
from stack import write_results

from services.scheduler.domain.assignment import Candidate, Weights, rank_candidates
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.policy import (
    Demand,
    PolicySettings,
    Request,
    assign_jointly,
    is_urgent,
    rank_priced,
)
from services.scheduler.domain.reach import Area, Reach, commune_area
from services.scheduler.domain.slots import free_slots
from services.scheduler.handlers import JOINT_BATCH
from shared.events import OpeningPeriod, Priority
from shared.geo import GridIndex, communes_in_departement
from shared.settings import Settings

# Île-de-France, 29 March 2020 (ARS press release).
OFFER = {"75": 84, "77": 3, "78": 9, "91": 6, "92": 10, "93": 20, "94": 10, "95": 13}
DEADLINES = {Priority.ASAP: timedelta(hours=6), Priority.ROUTINE: timedelta(hours=24)}
MORNING_MINUTES = 240
LOAD_NAMES = ("light", "normal", "surge")
INFEASIBLE = 1e9
EARTH_KM = 6371.0088

Result = dict[int, tuple[str, datetime, float, float]]


@dataclass(frozen=True)
class Patient:
    index: int
    lat: float
    lon: float
    arrival: datetime
    priority: Priority
    deadline: datetime
    area: Area  # of the patient's commune: their travel speed


def scenario(
    seed: int, patients: int, start: datetime
) -> tuple[list[CentreSchedule], list[Patient]]:
    rng = random.Random(seed)
    hours = tuple(OpeningPeriod(weekday=d, opens="08:00", closes="20:00") for d in range(7))
    centres = []
    for dep, count in OFFER.items():
        places = [c for c in communes_in_departement(dep) if dep != "75" or c.kind == "ARM"]
        places.sort(key=lambda c: -c.population)
        for i in range(count):
            town = places[i % len(places)]
            jitter = (rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01))
            centres.append(
                CentreSchedule(
                    centre_id=f"{dep}-{i:02d}",
                    lat=town.lat + jitter[0],
                    lon=town.lon + jitter[1],
                    departement=dep,
                    opening_hours=hours,
                    boxes=1,
                    consultation_minutes=30,
                    first_day=start.date(),
                )
            )
    towns = [
        c for dep in OFFER for c in communes_in_departement(dep) if dep != "75" or c.kind == "ARM"
    ]
    weights = [c.population for c in towns]
    drawn = []
    for index in range(patients):
        town = rng.choices(towns, weights=weights)[0]
        arrival = start + timedelta(minutes=rng.uniform(0, MORNING_MINUTES))
        priority = Priority.ASAP if rng.random() < 0.3 else Priority.ROUTINE
        deadline = arrival + DEADLINES[priority]
        drawn.append(
            Patient(index, town.lat, town.lon, arrival, priority, deadline, commune_area(town))
        )
    drawn.sort(key=lambda p: p.arrival)
    return centres, drawn


class Recent:
    """The bookings of the last ``minutes`` per centre, as the scheduler reads them
    from its appointments (created_at, priority, and how many candidate centres the
    patient had in reach when booked): their count, the urgent ones, the earliest
    created_at (``Demand.first``), and the count of those whose patient had at most
    ``few_options`` centres in reach, and of the urgent ones of them."""

    def __init__(self, minutes: float, few_options: int = 0) -> None:
        self.window = timedelta(minutes=minutes)
        self.few_options = few_options
        self.seen: dict[str, deque[tuple[datetime, bool, bool]]] = {}

    def add(self, centre_id: str, when: datetime, urgent: bool, options: int) -> None:
        few = options <= self.few_options
        self.seen.setdefault(centre_id, deque()).append((when, urgent, few))

    def demand(self, centre_ids: Sequence[str], now: datetime) -> dict[str, Demand]:
        out = {}
        for cid in centre_ids:
            q = self.seen.get(cid)
            if not q:
                continue
            while q and q[0][0] < now - self.window:
                q.popleft()
            if q:
                out[cid] = Demand(
                    bookings=len(q),
                    urgent=sum(1 for _, u, _ in q if u),
                    first=q[0][0],
                    few=sum(1 for _, _, f in q if f),
                    few_urgent=sum(1 for _, u, f in q if u and f),
                )
        return out


def online(
    centres: list[CentreSchedule],
    patients: list[Patient],
    weights: Weights,
    policy: PolicySettings,
    k: int,
    max_km: float,
    batch_seconds: float,
    lead_minutes: float,
) -> tuple[Result, int]:
    """The policy, as the scheduler runs it: each batch of arrivals placed at once."""
    grid: GridIndex[str] = GridIndex()
    by_id = {c.centre_id: c for c in centres}
    for c in centres:
        grid.add(c.centre_id, c.lat, c.lon)
    booked: dict[str, set[tuple[datetime, int]]] = {c.centre_id: set() for c in centres}
    recent = Recent(policy.rate_window_minutes, policy.few_options)
    result: Result = {}
    batches = 0
    i = 0
    while i < len(patients):
        j = i + 1
        close = patients[i].arrival + timedelta(seconds=batch_seconds)
        while j < len(patients) and patients[j].arrival <= close:
            j += 1
        batch = patients[i:j]
        i = j
        batches += 1
        now = batch[-1].arrival  # the batch is answered when its last one is in
        # As the scheduler's consumer does (services/scheduler/handlers/booking.py): the first
        # JOINT_BATCH of a batch planned together, then each handler in turn books its
        # planned place if still free, or its own choice (rank_priced) otherwise.
        plan: dict[int, Candidate] = {}
        joint = batch[:JOINT_BATCH]
        if len(joint) > 1:
            near_ids = sorted(
                {cid for p in joint for cid, _ in grid.nearest(p.lat, p.lon, k, max_km)}
            )
            planned = assign_jointly(
                [
                    Request(
                        str(p.index),
                        p.priority,
                        (p.lat, p.lon),
                        p.deadline,
                        Reach.of(p.area, lead_minutes),
                    )
                    for p in joint
                ],
                now=now,
                centres=[by_id[cid] for cid in near_ids],
                booked=booked,
                demand=recent.demand(near_ids, now),
                weights=weights,
                policy=policy,
                nearest=k,
                max_km=max_km,
            )
            plan = {int(ref): slot for ref, slot in planned.items()}
        for p in batch:
            # The patient's candidate centres: within max_km of the k nearest.
            own_ids = [cid for cid, _ in grid.nearest(p.lat, p.lon, k, max_km)]
            slot = plan.get(p.index)
            if slot is not None and (slot.start, slot.box) in booked[slot.centre_id]:
                slot = None  # taken by one before it in the batch
            if slot is None:
                ranked = rank_priced(
                    patient_lat=p.lat,
                    patient_lon=p.lon,
                    now=now,
                    deadline=p.deadline,
                    priority=p.priority,
                    centres=[by_id[cid] for cid in own_ids],
                    booked=booked,
                    demand=recent.demand(own_ids, now),
                    weights=weights,
                    policy=policy,
                    reach=Reach.of(p.area, lead_minutes),
                    limit=1,
                )
                slot = ranked[0] if ranked else None
            if slot is None:
                continue
            booked[slot.centre_id].add((slot.start, slot.box))
            # The store records with the booking how many candidate centres it had.
            recent.add(slot.centre_id, now, is_urgent(p.priority), len(own_ids))
            wait = (slot.start - p.arrival).total_seconds() / 60
            result[p.index] = (slot.centre_id, slot.start, slot.distance_km, wait)
    return result, batches


def greedy(
    centres: list[CentreSchedule],
    patients: list[Patient],
    weights: Weights,
    k: int,
    max_km: float,
    lead_minutes: float,
) -> Result:
    """The previous rule: each patient as it arrives, nearest-first, no price."""
    grid: GridIndex[str] = GridIndex()
    by_id = {c.centre_id: c for c in centres}
    for c in centres:
        grid.add(c.centre_id, c.lat, c.lon)
    booked: dict[str, set[tuple[datetime, int]]] = {c.centre_id: set() for c in centres}
    result: Result = {}
    for p in patients:
        near = [by_id[cid] for cid, _ in grid.nearest(p.lat, p.lon, k, max_km)]
        ranked = rank_candidates(
            patient_lat=p.lat,
            patient_lon=p.lon,
            now=p.arrival,
            deadline=p.deadline,
            centres=near,
            booked=booked,
            weights=weights,
            reach=Reach.of(p.area, lead_minutes),
        )
        if ranked:
            best = ranked[0]
            booked[best.centre_id].add((best.start, best.box))
            result[p.index] = (best.centre_id, best.start, best.distance_km, best.wait_minutes)
    return result


def _haversine(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    # shared.geo.haversine_km, vectorised: the cost matrix is patients x slots.
    p1, l1, p2, l2 = (np.radians(x) for x in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    out: np.ndarray = 2 * EARTH_KM * np.arcsin(np.sqrt(a))
    return out


def optimum(
    centres: list[CentreSchedule],
    patients: list[Patient],
    weights: Weights,
    max_km: float,
    lead_minutes: float,
) -> Result:
    """Every patient at once: the assignment problem on the same slots and cost, and
    the same reach (a slot starts at the earliest the lead time and the travel from the
    patient's arrival, ``Reach.earliest`` vectorised)."""
    first = min(p.arrival for p in patients)
    last = max(p.deadline for p in patients)
    slots = [
        (ci, start)
        for ci, c in enumerate(centres)
        for start, _, _ in free_slots(c, first, last, ())
    ]
    slot_centre = np.array([ci for ci, _ in slots])
    starts = np.array([s.timestamp() for _, s in slots])
    km = _haversine(
        np.array([p.lat for p in patients])[:, None],
        np.array([p.lon for p in patients])[:, None],
        np.array([c.lat for c in centres])[None, :],
        np.array([c.lon for c in centres])[None, :],
    )[:, slot_centre]
    arrival = np.array([p.arrival.timestamp() for p in patients])[:, None]
    deadline = np.array([p.deadline.timestamp() for p in patients])[:, None]
    wait = (starts[None, :] - arrival) / 60
    per_km = np.array([Reach.of(p.area, lead_minutes).minutes_per_km for p in patients])
    reachable = wait >= lead_minutes + km * per_km[:, None]
    ok = reachable & (starts[None, :] <= deadline) & (km <= max_km)
    cost = np.where(ok, weights.travel_per_km * km + weights.wait_per_minute * wait, INFEASIBLE)
    rows, cols = linear_sum_assignment(cost)
    result: Result = {}
    for i, j in zip(rows, cols, strict=True):
        if cost[i, j] < INFEASIBLE:
            result[patients[i].index] = (
                centres[slot_centre[j]].centre_id,
                slots[j][1],
                float(km[i, j]),
                float(wait[i, j]),
            )
    return result


def busiest(centres: list[CentreSchedule], patients: list[Patient]) -> tuple[str, float, float]:
    """(département, its load, the region's load): arrivals per minute over places per
    minute, a patient counted in the département of their nearest centre. A load named
    light for the region is not light where the centres are few."""
    grid: GridIndex[str] = GridIndex()
    for c in centres:
        grid.add(c.centre_id, c.lat, c.lon)
    dep = {c.centre_id: c.departement for c in centres}
    places: dict[str, float] = {}
    for c in centres:
        places[c.departement] = places.get(c.departement, 0.0) + c.boxes / c.consultation_minutes
    arrivals: dict[str, int] = {}
    for p in patients:
        d = dep[grid.nearest(p.lat, p.lon, 1)[0][0]]
        arrivals[d] = arrivals.get(d, 0) + 1
    load = {d: arrivals.get(d, 0) / MORNING_MINUTES / places[d] for d in places}
    worst = max(load, key=lambda d: load[d])
    return worst, load[worst], len(patients) / MORNING_MINUTES / sum(places.values())


def summary(result: Result, weights: Weights, total: int) -> dict[str, float]:
    km = [r[2] for r in result.values()]
    wait = [r[3] for r in result.values()]
    return {
        "assigned": len(result),
        # Neither side books past a deadline: a patient without a slot is one the
        # scheduler waitlists past their deadline.
        "past_deadline": total - len(result),
        "mean_travel_km": float(np.mean(km)) if km else 0.0,
        "mean_wait_min": float(np.mean(wait)) if wait else 0.0,
        "total_cost": float(sum(weights.cost(a, b) for a, b in zip(km, wait, strict=True))),
    }


def ratios(got: dict[str, float], best: dict[str, float]) -> dict[str, float]:
    return {
        "travel": got["mean_travel_km"] / max(best["mean_travel_km"], 1e-9),
        "wait": got["mean_wait_min"] / max(best["mean_wait_min"], 1e-9),
        "total": got["total_cost"] / max(best["total_cost"], 1e-9),
    }


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, nargs="+", default=[600, 1500, 3000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--k", type=int, default=settings.candidate_centres)
    parser.add_argument("--max-km", type=float, default=settings.max_travel_km)
    parser.add_argument(
        "--lead-minutes",
        type=float,
        default=settings.booking_lead_minutes,
        help="no slot sooner than this + the travel after booking (both sides)",
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=2.0,
        help="arrivals held together (a consumer batch); 0: one at a time",
    )
    parser.add_argument("--no-greedy", action="store_true", help="skip the previous rule")
    args = parser.parse_args()
    weights = Weights(travel_per_km=settings.travel_weight, wait_per_minute=settings.wait_weight)
    policy = PolicySettings(
        forecast_minutes=settings.policy_forecast_minutes,
        rate_window_minutes=settings.policy_rate_window_minutes,
        rate_floor_minutes=settings.policy_rate_floor_minutes,
        area_km=settings.policy_area_km,
        reserve_minutes=settings.policy_reserve_minutes,
        reserve_factor=settings.policy_reserve_factor,
        few_options=settings.policy_few_options,
        few_hold_minutes=settings.policy_few_hold_minutes,
        few_hold_factor=settings.policy_few_hold_factor,
        few_urgent_factor=settings.policy_few_urgent_factor,
    )
    start = datetime.combine(date(2020, 3, 30), datetime.min.time(), UTC) + timedelta(hours=7)
    console = Console()
    table = Table(
        title=f"Île-de-France, 155 centres, {MORNING_MINUTES // 60} h of arrivals: "
        "online policy / offline optimum"
    )
    for column in [
        "load",
        "patients/min",
        "load: region / busiest dép.",
        "seed",
        "travel",
        "wait",
        "total cost",
        "past deadline: online / optimum",
        "greedy total (past deadline)",
        "batches",
        "online s",
        "optimum s",
    ]:
        table.add_column(column, justify="right")
    runs = []
    for n_load, patients_n in enumerate(args.loads):
        name = LOAD_NAMES[n_load] if n_load < len(LOAD_NAMES) else f"load {n_load + 1}"
        for seed in args.seeds:
            centres, patients = scenario(seed, patients_n, start)
            worst_dep, worst_load, region_load = busiest(centres, patients)
            t0 = time.perf_counter()
            on, batches = online(
                centres,
                patients,
                weights,
                policy,
                args.k,
                args.max_km,
                args.batch_seconds,
                args.lead_minutes,
            )
            t1 = time.perf_counter()
            off = optimum(centres, patients, weights, args.max_km, args.lead_minutes)
            t2 = time.perf_counter()
            got, best = summary(on, weights, len(patients)), summary(off, weights, len(patients))
            r = ratios(got, best)
            old = None
            if not args.no_greedy:
                old = summary(
                    greedy(centres, patients, weights, args.k, args.max_km, args.lead_minutes),
                    weights,
                    len(patients),
                )
            run = {
                "load": name,
                "patients": patients_n,
                "per_minute": patients_n / MORNING_MINUTES,
                "region_load": region_load,
                "busiest": {"departement": worst_dep, "load": worst_load},
                "seed": seed,
                "online": got,
                "optimum": best,
                "greedy": old,
                "ratios": r,
                "batches": batches,
                "online_seconds": t1 - t0,
                "optimum_seconds": t2 - t1,
            }
            runs.append(run)
            table.add_row(
                name,
                f"{patients_n / MORNING_MINUTES:.2f}",
                f"{region_load:.2f} / {worst_dep}: {worst_load:.1f}",
                str(seed),
                f"{r['travel']:.3f}",
                f"{r['wait']:.3f}",
                f"{r['total']:.3f}",
                f"{got['past_deadline']:.0f} / {best['past_deadline']:.0f}",
                "-"
                if old is None
                else f"{old['total_cost'] / best['total_cost']:.3f} ({old['past_deadline']:.0f})",
                str(batches),
                f"{t1 - t0:.1f}",
                f"{t2 - t1:.1f}",
            )
            console.print(
                f"{name} seed {seed}: total {r['total']:.3f}, past deadline "
                f"{got['past_deadline']:.0f} / {best['past_deadline']:.0f}"
            )
    console.print(table)
    worst = max(run["ratios"]["total"] for run in runs)
    late = all(run["online"]["past_deadline"] <= run["optimum"]["past_deadline"] for run in runs)
    console.print(
        f"worst total cost ratio {worst:.3f} (target ≤ 1.10); online past deadline never "
        f"above the optimum's: {'yes' if late else 'NO'}"
    )
    result = {"args": vars(args), "policy": vars(policy), "runs": runs, "worst_ratio": worst}
    console.print(f"written {write_results('assignment_quality', result)}")


if __name__ == "__main__":
    main()
