"""The saturation forecast (services/scheduler/domain/forecast.py) against the first wave
as it happened: every metropolitan département, a forecast every hour from 18 March to
30 April 2020 from the arrivals seen so far only, scored against what then happened.

    python bench/forecast_backtest.py [--workers 2] [--paths 400] [--figures docs/forecast]

**The arrivals.** Santé publique France's hospital data (``bench/data``, a copy of
``../shared/data/covid_hospit_2020.csv``): a département's new admissions of a day are
Δhospitalisés + Δretours à domicile + Δdécès (negative days count 0), times
``AMBULATORY_FACTOR`` (10 oriented patients for one admission) for the ambulatory flow.
A day's count is split into hours by the forecast's ``DEFAULT_PROFILE`` (a multinomial
draw, seed 2020: the days are real, the hours within them are not) and each arrival is
asap with probability ``ASAP_SHARE``, routine otherwise.

**The capacity** (fixed, per département): centres open 08:00-20:00 every day with
``CAPACITY_SHARE`` (60 %) of the département's peak 7-day mean of daily arrivals in
places a day, at least one an hour: every département meets saturation near its peak
and leaves it after. The forecast never reads the peak: it sees the free places, as
the scheduler does.

**What happened.** The patients are booked by the forecast's own booking rule
(``first_full_hour``'s recursion, most urgent first, earliest free place an hour ahead,
a place nobody took when it started is lost). At each hour the free places ahead are
what the earlier bookings left; the realised hours until full is the same recursion
run on the arrivals that then came (72 h and more: "not within 72 h").

**The scores**, over the forecasts where saturation was in question (the forecast's
P10 within 72 h, its P90 not 0, i.e. neither surely far nor surely full now):
calibration, the fraction of realised hours until full below each forecast percentile
(a randomised PIT: ties and "not within 72 h" spread uniformly over the forecast's
probability of that value, so a calibrated forecast scores 10/50/90 % exactly); the
median absolute error of the median (both capped at 72 h) against the naive forecast's,
"the rate of the last 24 h continues" (the same profile, no growth, its mean path).
Targets: each calibration within ±7 points, the median's error at least 30 % below
the naive one's.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.scheduler.domain.forecast import (  # noqa: E402
    BOOKED,
    DEFAULT_PROFILE,
    ForecastSettings,
    estimate_rate,
    first_full_hour,
    simulate_arrivals,
)

DATA = ROOT / "bench" / "data" / "covid_hospit_2020.csv.gz"
AMBULATORY_FACTOR = 10
ASAP_SHARE = 0.2
CAPACITY_SHARE = 0.6
OPENS, CLOSES = 8, 20  # local hours (UTC+1 in March, UTC+2 from 29 March: see _local_hour)
FIRST = date(2020, 3, 19)  # the first day with a difference (18 March is the first row)
LAST_FORECAST = date(2020, 4, 30)
HORIZON = 72
TARGET_POINTS = 7.0
TARGET_GAIN = 0.30
SHOWN = "68"  # Haut-Rhin: the first wave's first département


def _local_hour(moment: datetime) -> int:
    summer = moment >= datetime(2020, 3, 29, 1, tzinfo=UTC)
    return (moment.hour + (2 if summer else 1)) % 24


def read_admissions(path: Path) -> dict[str, list[float]]:
    """Daily new admissions per metropolitan département from ``FIRST`` on."""
    rows: dict[str, dict[date, tuple[int, int, int]]] = defaultdict(dict)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = row["departement"]
            if not code or len(code) > 2:
                continue  # the unnamed row, the overseas départements
            day = date.fromisoformat(row["jour"])
            rows[code][day] = (
                int(row["hospitalises"]),
                int(row["retours_domicile"]),
                int(row["deces"]),
            )
    out: dict[str, list[float]] = {}
    for code, days in rows.items():
        ordered = sorted(days)
        series = []
        for before, day in itertools.pairwise(ordered):
            delta = sum(days[day]) - sum(days[before])
            series.append(max(0, delta) * AMBULATORY_FACTOR)
        out[code] = series
    return out


@dataclass
class Result:
    departement: str
    pit: list[float]
    ours: list[float]
    naive: list[float]
    truth: list[float]
    times: list[int]
    bands: list[tuple[float, float, float]]
    naive_t: list[float]
    scored: int
    issued: int


def _hourly(daily: list[float], rng: np.random.Generator) -> np.ndarray:
    """(hours, 3) arrivals per hour and priority (asap, urgent, routine), from midnight
    UTC of ``FIRST``: each day's count split by the local-hour profile."""
    start = datetime(2020, 3, 19, tzinfo=UTC)
    weights = np.array(
        [DEFAULT_PROFILE[_local_hour(start + timedelta(hours=h))] for h in range(24 * len(daily))]
    )
    out = np.zeros((24 * len(daily), 3), dtype=np.int64)
    for d, count in enumerate(daily):
        w = weights[24 * d : 24 * d + 24]
        hours = rng.multinomial(round(count), w / w.sum())
        asap = rng.binomial(hours, ASAP_SHARE)
        out[24 * d : 24 * d + 24, 0] = asap
        out[24 * d : 24 * d + 24, 2] = hours - asap
    return out


def _capacity(daily: list[float], hours: int) -> np.ndarray:
    last = (LAST_FORECAST - FIRST).days + 1
    means = [np.mean(daily[max(0, d - 6) : d + 1]) for d in range(last)]
    per_hour = max(1, math.ceil(CAPACITY_SHARE * max(means) / (CLOSES - OPENS)))
    start = datetime(2020, 3, 19, tzinfo=UTC)
    return np.array(
        [
            per_hour if OPENS <= _local_hour(start + timedelta(hours=h)) < CLOSES else 0
            for h in range(hours)
        ],
        dtype=np.float64,
    )


def _pit(full: np.ndarray, truth: int, rng: np.random.Generator) -> float:
    below = float((full < truth).mean())
    at = float((np.minimum(full, HORIZON) == min(truth, HORIZON)).mean())
    return below + rng.uniform() * at


def backtest(departement: str, daily: list[float], paths: int) -> Result:
    """Every hourly forecast of one département, and what happened."""
    rng = np.random.default_rng(2020 + sum(map(ord, departement)))
    arrivals = _hourly(daily, rng)
    hours = len(arrivals)
    capacity = _capacity(daily, hours)
    settings = ForecastSettings(paths=paths, horizon_hours=HORIZON)
    deadlines = [settings.deadlines[p] for p in BOOKED]
    lead, tail = settings.lead_hours, settings.tail_hours
    cumulative = np.concatenate([[0.0], np.cumsum(capacity)])
    used = 0.0  # places consumed by the bookings (cumulative index), all priorities
    result = Result(departement, [], [], [], [], [], [], [], 0, 0)
    last = 24 * ((LAST_FORECAST - FIRST).days + 1)
    for t in range(1, last):
        # The hour just gone is booked: the bookings consume the places ahead.
        used = max(used, cumulative[t - 1 + lead]) + float(arrivals[t - 1].sum())
        if t < 24 or len(arrivals) - t < HORIZON:
            continue  # a day of history first; what happened must be known
        free = capacity[t : t + tail].copy()
        opened = capacity[t : t + tail]  # the hours the centres open (asap deadlines)
        _consume(free, used - cumulative[t])
        now = datetime(2020, 3, 19, tzinfo=UTC) + timedelta(hours=t)
        seen = arrivals[max(0, t - 24 * settings.fit_days) : t]
        hourly = {p: seen[:, i] for i, p in enumerate(BOOKED)}
        rate = estimate_rate(hourly, now, settings)
        paths_arrivals = simulate_arrivals(rate, now, settings, rng)
        full = first_full_hour(paths_arrivals, free, [0, 0, 0], deadlines, lead, opened)
        future = arrivals[t : t + HORIZON][None, :, :]
        truth = int(first_full_hour(future, free, [0, 0, 0], deadlines, lead, opened)[0])
        naive = _naive(seen, now, free, deadlines, opened)
        result.issued += 1
        p10, p50, p90 = (
            float(np.quantile(full, q, method="inverted_cdf")) for q in (0.1, 0.5, 0.9)
        )
        result.times.append(t)
        result.bands.append((p10, p50, p90))
        result.truth.append(float(min(truth, HORIZON)))
        result.naive_t.append(float(min(naive, HORIZON)))
        if p10 < HORIZON and p50 > 0:
            result.scored += 1
            result.pit.append(_pit(full, truth, rng))
            result.ours.append(abs(min(p50, HORIZON) - min(truth, HORIZON)))
            result.naive.append(abs(min(naive, HORIZON) - min(truth, HORIZON)))
    return result


def _consume(free: np.ndarray, taken: float) -> None:
    """Remove ``taken`` places from the front of ``free`` (the bookings ahead)."""
    for h in range(len(free)):
        if taken <= 0:
            return
        bite = min(free[h], taken)
        free[h] -= bite
        taken -= bite


def _naive(
    seen: np.ndarray,
    now: datetime,
    free: np.ndarray,
    deadlines: list[int],
    opened: np.ndarray,
) -> int:
    """The first full hour if the last 24 hours' rate continues (the mean path)."""
    last = seen[-24:].sum(axis=0).astype(np.float64)
    profile = np.array(
        [DEFAULT_PROFILE[_local_hour(now + timedelta(hours=h))] for h in range(HORIZON)]
    )
    mean = profile[None, :, None] * last[None, None, :]
    return int(first_full_hour(mean, free, [0, 0, 0], deadlines, 1, opened)[0])


def _run(args: tuple[str, list[float], int]) -> Result:
    return backtest(*args)


def _fraction_below(pits: list[float], q: float) -> float:
    return 100.0 * float(np.mean(np.array(pits) < q)) if pits else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--paths", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="départements (default: all metropolitan)")
    parser.add_argument("--figures", type=Path, help="folder for the PNGs (docs/forecast)")
    args = parser.parse_args()
    started, cpu0 = time.monotonic(), os.times()
    admissions = read_admissions(DATA)
    codes = sorted(args.only or admissions)
    jobs = [(code, admissions[code], args.paths) for code in codes]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(_run, jobs))
    elapsed = time.monotonic() - started
    pits = [p for r in results for p in r.pit]
    ours = float(np.median([e for r in results for e in r.ours]))
    naive = float(np.median([e for r in results for e in r.naive]))
    calibration = {q: _fraction_below(pits, q / 100) for q in (10, 50, 90)}
    _print_table(results, calibration, ours, naive, elapsed, os.times(), cpu0)
    if args.figures:
        _figures(results, pits, args.figures)
    met = all(abs(calibration[q] - q) <= TARGET_POINTS for q in calibration) and (
        ours <= (1 - TARGET_GAIN) * naive
    )
    gain = f"{100 * (1 - ours / naive):.0f} % lower" if naive else "the naive's is 0"
    print(
        f"forecast targets: {'met' if met else 'missed'} (calibration P10 {calibration[10]:.1f} %, "
        f"P50 {calibration[50]:.1f} %, P90 {calibration[90]:.1f} %; median absolute error of "
        f"the median {ours:.1f} h vs naive {naive:.1f} h, {gain})"
    )


def _print_table(
    results: list[Result],
    calibration: dict[int, float],
    ours: float,
    naive: float,
    elapsed: float,
    cpu1: os.times_result,
    cpu0: os.times_result,
) -> None:
    issued = sum(r.issued for r in results)
    scored = sum(r.scored for r in results)
    cpu = (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"commit {commit}; {len(results)} départements, {issued} forecasts, {scored} scored")
    print(f"wall {elapsed:.0f} s, worker CPU {cpu:.0f} s, load average {os.getloadavg()[0]:.1f}")
    print("| measure | forecast | target |")
    print("| --- | --- | --- |")
    for q in (10, 50, 90):
        print(f"| realised below P{q} | {calibration[q]:.1f} % | {q} ± {TARGET_POINTS:.0f} % |")
    print(
        f"| median abs. error of the median | {ours:.1f} h | ≤ {(1 - TARGET_GAIN) * naive:.1f} h |"
    )
    print(f"| same, naive (last 24 h rate) | {naive:.1f} h | — |")
    ours_all = [e for r in results for e in r.ours]
    naive_all = [e for r in results for e in r.naive]
    print(
        f"mean absolute error of the median {np.mean(ours_all):.2f} h vs naive "
        f"{np.mean(naive_all):.2f} h; forecasts within 1 h of what happened "
        f"{100 * np.mean(np.array(ours_all) <= 1):.0f} % vs naive "
        f"{100 * np.mean(np.array(naive_all) <= 1):.0f} %"
    )


def _figures(results: list[Result], pits: list[float], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    levels = np.linspace(0.05, 0.95, 19)
    observed = [np.mean(np.array(pits) < q) for q in levels]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrage parfait")
    ax.plot(levels, observed, marker="o", label="prévision")
    ax.fill_between(
        [0, 1], [-0.07, 0.93], [0.07, 1.07], color="grey", alpha=0.15, label="± 7 points"
    )
    ax.set_xlabel("niveau du percentile prévu")
    ax.set_ylabel("part des délais réalisés en dessous")
    ax.set_title("Heures avant saturation : calibrage (mars-avril 2020)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "calibration.png", dpi=110)
    plt.close(fig)
    shown = next((r for r in results if r.departement == SHOWN), results[0])
    _departement_figure(shown, folder, plt)


def _departement_figure(result: Result, folder: Path, plt: object) -> None:
    start = datetime(2020, 3, 19, tzinfo=UTC)
    x = [start + timedelta(hours=t) for t in result.times]
    bands = np.array(result.bands).clip(max=HORIZON)
    fig, ax = plt.subplots(figsize=(9, 4))  # type: ignore[attr-defined]
    ax.fill_between(x, bands[:, 0], bands[:, 2], alpha=0.3, label="prévision P10-P90")
    ax.plot(x, bands[:, 1], label="prévision P50")
    ax.plot(x, result.naive_t, color="orange", linewidth=0.8, label="naïf (rythme des 24 h)")
    ax.plot(x, result.truth, color="black", linewidth=1, label="réalisé")
    ax.set_ylabel("heures avant saturation (72 = pas dans les 72 h)")
    ax.set_title(f"Département {result.departement} : heures avant saturation, prévu et réalisé")
    ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(folder / f"departement-{result.departement}.png", dpi=110)
    plt.close(fig)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
