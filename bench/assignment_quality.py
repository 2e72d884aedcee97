"""How close the scheduler's online assignment comes to the best possible one.

A reproducible Île-de-France scenario: the 155 centres of 29 March 2020 per
département (seeds), placed in populous communes; patients drawn in proportion to
commune population, arriving over a morning, each with a priority and its deadline.
The online assignment is the scheduler's own domain (services.scheduler.domain:
nearest centres, then rank_candidates, most urgent first, one patient at a time as
they arrive). The offline optimum sees every patient at once and solves the
assignment problem on the same cost (travel and waiting, same weights) and the same
slots, with scipy.optimize.linear_sum_assignment.

    python bench/assignment_quality.py [--patients 1500] [--seed 2020]
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.optimize import linear_sum_assignment
from stack import write_results

from services.scheduler.domain.assignment import Weights, rank_candidates
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.slots import free_slots
from shared.events import OpeningPeriod, Priority
from shared.geo import GridIndex, communes_in_departement, haversine_km

# Île-de-France, 29 March 2020 (ARS press release).
OFFER = {"75": 84, "77": 3, "78": 9, "91": 6, "92": 10, "93": 20, "94": 10, "95": 13}
DEADLINES = {Priority.ASAP: timedelta(hours=6), Priority.ROUTINE: timedelta(hours=24)}
INFEASIBLE = 1e9


@dataclass(frozen=True)
class Patient:
    index: int
    lat: float
    lon: float
    arrival: datetime
    priority: Priority
    deadline: datetime


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
        arrival = start + timedelta(minutes=rng.uniform(0, 240))
        priority = Priority.ASAP if rng.random() < 0.3 else Priority.ROUTINE
        drawn.append(
            Patient(index, town.lat, town.lon, arrival, priority, arrival + DEADLINES[priority])
        )
    drawn.sort(key=lambda p: p.arrival)
    return centres, drawn


def online(
    centres: list[CentreSchedule], patients: list[Patient], weights: Weights, k: int, max_km: float
) -> dict[int, tuple[str, datetime, float, float]]:
    """Each patient as it arrives, as the scheduler does it."""
    grid: GridIndex[str] = GridIndex()
    by_id = {c.centre_id: c for c in centres}
    for c in centres:
        grid.add(c.centre_id, c.lat, c.lon)
    booked: dict[str, set[tuple[datetime, int]]] = {c.centre_id: set() for c in centres}
    result = {}
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
        )
        if ranked:
            best = ranked[0]
            booked[best.centre_id].add((best.start, best.box))
            result[p.index] = (best.centre_id, best.start, best.distance_km, best.wait_minutes)
    return result


def optimum(
    centres: list[CentreSchedule], patients: list[Patient], weights: Weights, max_km: float
) -> dict[int, tuple[str, datetime, float, float]]:
    """Every patient at once: the assignment problem on the same slots and cost."""
    first = min(p.arrival for p in patients)
    last = max(p.deadline for p in patients)
    slots = [(c, start, box) for c in centres for start, _, box in free_slots(c, first, last, ())]
    cost = np.full((len(patients), len(slots)), INFEASIBLE)
    starts = np.array([s[1].timestamp() for s in slots])
    for i, p in enumerate(patients):
        km = np.array([haversine_km(p.lat, p.lon, c.lat, c.lon) for c, _, _ in slots])
        wait = (starts - p.arrival.timestamp()) / 60
        ok = (wait >= 0) & (starts <= p.deadline.timestamp()) & (km <= max_km)
        cost[i, ok] = weights.travel_per_km * km[ok] + weights.wait_per_minute * wait[ok]
    rows, cols = linear_sum_assignment(cost)
    result = {}
    for i, j in zip(rows, cols, strict=True):
        if cost[i, j] < INFEASIBLE:
            c, start, _ = slots[j]
            p = patients[i]
            result[p.index] = (
                c.centre_id,
                start,
                haversine_km(p.lat, p.lon, c.lat, c.lon),
                (start - p.arrival).total_seconds() / 60,
            )
    return result


def summary(
    name: str, result: dict[int, tuple[str, datetime, float, float]], weights: Weights, total: int
) -> dict[str, float]:
    km = [r[2] for r in result.values()]
    wait = [r[3] for r in result.values()]
    return {
        "assigned": len(result),
        "unassigned": total - len(result),
        "mean_travel_km": float(np.mean(km)) if km else 0.0,
        "mean_wait_min": float(np.mean(wait)) if wait else 0.0,
        "total_cost": float(sum(weights.cost(a, b) for a, b in zip(km, wait, strict=True))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--k", type=int, default=8, help="nearest centres weighed")
    parser.add_argument("--max-km", type=float, default=60.0)
    args = parser.parse_args()
    weights = Weights()
    start = datetime.combine(date(2020, 3, 30), datetime.min.time(), UTC) + timedelta(hours=7)
    centres, patients = scenario(args.seed, args.patients, start)
    t0 = time.perf_counter()
    on = online(centres, patients, weights, args.k, args.max_km)
    t1 = time.perf_counter()
    off = optimum(centres, patients, weights, args.max_km)
    t2 = time.perf_counter()
    rows = {
        "online": summary("online", on, weights, len(patients)),
        "optimum": summary("optimum", off, weights, len(patients)),
    }
    rows["online"]["seconds"], rows["optimum"]["seconds"] = t1 - t0, t2 - t1
    table = Table(
        title=f"Île-de-France: {len(centres)} centres, {len(patients)} patients (seed {args.seed})"
    )
    for column in [
        "",
        "assigned",
        "unassigned",
        "mean travel km",
        "mean wait min",
        "total cost",
        "seconds",
    ]:
        table.add_column(column, justify="right")
    for name, r in rows.items():
        table.add_row(
            name,
            str(r["assigned"]),
            str(r["unassigned"]),
            f"{r['mean_travel_km']:.2f}",
            f"{r['mean_wait_min']:.1f}",
            f"{r['total_cost']:.0f}",
            f"{r['seconds']:.2f}",
        )
    console = Console()
    console.print(table)
    same = rows["online"]["assigned"] == rows["optimum"]["assigned"]
    ratio = rows["online"]["total_cost"] / rows["optimum"]["total_cost"]
    got, best = rows["online"], rows["optimum"]
    travel = got["mean_travel_km"] / best["mean_travel_km"]
    wait = got["mean_wait_min"] / max(best["mean_wait_min"], 1e-9)
    console.print(
        f"online / optimum: travel {travel:.2f}, wait {wait:.2f}, total cost {ratio:.2f}"
        + ("" if same else " (not the same number assigned: compare with care)")
    )
    result = {"args": vars(args), "results": rows, "cost_ratio": ratio}
    console.print(f"written {write_results('assignment_quality', result)}")


if __name__ == "__main__":
    main()
