"""Where the online policy loses cost against the offline optimum (issue 27).

Runs ``bench/assignment_quality.py``'s scenario, online policy and optimum (the same
functions, settings and cost) for one load and seed, and prints where the two differ:

- the cost of each side by the patient's département (of their nearest centre), by
  priority, by arrival hour, and by how many candidate centres the patient had in reach
  (few-option or not): who pays the gap, in travel or in waiting;
- the places each side used, by the centre's département and the hour of the place:
  where the online side leaves places empty that the optimum fills;
- with ``--without few_options=0`` (any ``PolicySettings`` field), the same online run
  with that setting changed, by département: what one part of the policy costs, and
  who would be past their deadline without it.

    python bench/assignment_gap.py [--load 1500] [--seed 2020] [--without few_options=0]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from assignment_quality import Patient, Result, online, optimum, scenario

from services.scheduler.domain.assignment import Weights
from services.scheduler.domain.policy import PolicySettings
from shared.geo import GridIndex
from shared.settings import Settings


def policy_of(settings: Settings) -> PolicySettings:
    """The policy as the bench (and the scheduler) builds it from the settings."""
    return PolicySettings(
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


def by_group(
    title: str,
    patients: list[Patient],
    key: Callable[[Patient], str],
    sides: tuple[Result, Result],
    weights: Weights,
) -> None:
    """Cost, km and mean wait of each side per group; the gap is first minus second."""
    rows: dict[str, list[float]] = defaultdict(lambda: [0.0] * 7)
    for p in patients:
        row = rows[key(p)]
        row[0] += 1.0
        for n, side in enumerate(sides):
            if p.index in side:
                _, _, km, wait = side[p.index]
                row[1 + n] += weights.cost(km, wait)
                row[3 + n] += km
                row[5 + n] += wait
    print(f"by {title}: patients, cost (gap), km, mean wait min")
    for name in sorted(rows):
        count, c1, c2, k1, k2, w1, w2 = rows[name]
        print(
            f"  {name:>8} {count:5.0f}  cost {c1:7.0f} / {c2:7.0f} ({c1 - c2:+6.0f})"
            f"  km {k1:6.0f} / {k2:6.0f}  wait {w1 / count:5.1f} / {w2 / count:5.1f}"
        )


def places(sides: tuple[Result, Result], departement: dict[str, str]) -> None:
    """Places used per (centre's département, hour of the place), first / second."""
    used: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for n, side in enumerate(sides):
        for centre_id, start, _, _ in side.values():
            used[(departement[centre_id], f"{start:%d %H}h")][n] += 1
    deps = sorted(set(departement.values()))
    print("places used, centre's département x day and hour of the place (UTC)")
    print("          " + " ".join(f"{d:>9}" for d in deps))
    for hour in sorted({h for _, h in used}):
        cells = (f"{used[(d, hour)][0]:4d}/{used[(d, hour)][1]:<4d}" for d in deps)
        print(f"  {hour} " + " ".join(cells))


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--batch-seconds", type=float, default=2.0)
    parser.add_argument("--without", default="", help="a PolicySettings change, e.g. few_options=0")
    args = parser.parse_args()
    weights = Weights(travel_per_km=settings.travel_weight, wait_per_minute=settings.wait_weight)
    policy = policy_of(settings)
    lead, k, max_km = (
        settings.booking_lead_minutes,
        settings.candidate_centres,
        settings.max_travel_km,
    )
    start = datetime.combine(date(2020, 3, 30), datetime.min.time(), UTC) + timedelta(hours=7)
    centres, patients = scenario(args.seed, args.load, start)
    on, _ = online(centres, patients, weights, policy, k, max_km, args.batch_seconds, lead)
    off = optimum(centres, patients, weights, max_km, lead)
    grid: GridIndex[str] = GridIndex()
    for c in centres:
        grid.add(c.centre_id, c.lat, c.lon)
    departement = {c.centre_id: c.departement for c in centres}
    home = {p.index: departement[grid.nearest(p.lat, p.lon, 1)[0][0]] for p in patients}
    reach = {p.index: len(grid.nearest(p.lat, p.lon, k, max_km)) for p in patients}
    few = policy.few_options

    def options(p: Patient) -> str:
        return f"few ({few}-)" if reach[p.index] <= few else f"many ({few + 1}+)"

    total = [sum(weights.cost(r[2], r[3]) for r in side.values()) for side in (on, off)]
    print(
        f"load {args.load} seed {args.seed}: online / optimum cost {total[0]:.0f} / "
        f"{total[1]:.0f} = {total[0] / total[1]:.4f}; past deadline "
        f"{len(patients) - len(on)} / {len(patients) - len(off)}"
    )
    groups: list[tuple[str, Callable[[Patient], str]]] = [
        ("patient's département", lambda p: home[p.index]),
        ("priority", lambda p: p.priority.value),
        ("arrival hour (UTC)", lambda p: f"{p.arrival.hour:02d}h"),
        ("candidate centres in reach", options),
    ]
    for title, key in groups:
        by_group(title, patients, key, (on, off), weights)
    places((on, off), departement)
    if args.without:
        field, value = args.without.split("=")
        kind = type(getattr(policy, field))
        changed = dataclasses.replace(policy, **{field: kind(value)})
        other, _ = online(centres, patients, weights, changed, k, max_km, args.batch_seconds, lead)
        cost = sum(weights.cost(r[2], r[3]) for r in other.values())
        print(
            f"with {args.without}: {cost:.0f} = {cost / total[1]:.4f} of the optimum; "
            f"past deadline {len(patients) - len(other)}: "
            + ", ".join(
                f"#{p.index} {p.priority.value} {reach[p.index]} in reach"
                for p in patients
                if p.index not in other
            )
        )
        by_group(
            "patient's département (defaults / changed)",
            patients,
            lambda p: home[p.index],
            (on, other),
            weights,
        )
        places((on, other), departement)


if __name__ == "__main__":
    main()
