"""The saturation forecast (services/scheduler/domain/forecast.py) against the first wave
as it happened: every metropolitan département, a forecast every hour from 18 March to
30 April 2020 from the arrivals seen so far only, scored against what then happened.

    python bench/forecast_backtest.py [--workers 2] [--paths 200] [--figures docs/forecast]
        [--fit-days 7] [--growth-prior 0.3] [--only 35 75]

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

**The scores.** The errors are scored on the forecasts whose *realised* hours until full
was 1 to 71 (chosen from what happened, not from either forecast, so the selection
favours neither; 0, issued when already full, is counted apart: the waiting list's
alert says it, and both forecasts see the free places): the median absolute error of
the median (capped at 72 h, as the truth) against two naive forecasts' first full hour
on their mean path: "the rate of the last 24 h continues", flat over the hours, as the
issue words it (the target's comparison), and the same count spread by the hour
profile (a stronger naive, shown beside it); and by band of the realised hours (1-12,
12-24, 24-72 h). Calibration, the fraction of realised hours until full below each
forecast percentile, by a randomised PIT (ties and "not within 72 h" spread uniformly
over the forecast's probability of that value), over every forecast issued, as the
issue defines it; also over the forecasts whose own P10 is within 72 h, and over the
scored ones, which is biased by construction (selected on the outcome: a forecast
giving 30 % to "full now" has its low PITs all removed with the realised 0s).
Targets: each calibration within ±7 points, the median's error at least 30 % below
the flat naive one's.
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
from dataclasses import dataclass, field
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
        series: list[float] = []
        for before, day in itertools.pairwise(ordered):
            delta = sum(days[day]) - sum(days[before])
            series.append(max(0, delta) * AMBULATORY_FACTOR)
        out[code] = series
    return out


@dataclass
class Result:
    """One département's forecasts: every issued one (``times``, ``bands``, ``truth``,
    the naive ones' ``flat_t`` and ``profile_t``, ``pit_all``) and the scored ones'
    PIT and absolute errors of the median (``scored``: their indices)."""

    departement: str
    times: list[int] = field(default_factory=list)
    bands: list[tuple[float, float, float]] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    flat_t: list[float] = field(default_factory=list)
    profile_t: list[float] = field(default_factory=list)
    pit_all: list[float] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)

    def errors(self, of: str) -> list[float]:
        """Absolute errors of the scored forecasts' median: ``ours``, ``flat`` or
        ``profile`` (all capped at the horizon, like the truth)."""
        series = {"ours": [b[1] for b in self.bands], "flat": self.flat_t}
        series["profile"] = self.profile_t
        return [abs(min(series[of][i], HORIZON) - self.truth[i]) for i in self.scored]


def _local(hours: int) -> np.ndarray:
    """The local hour of each hour from midnight UTC of ``FIRST``."""
    start = datetime(2020, 3, 19, tzinfo=UTC)
    return np.array([_local_hour(start + timedelta(hours=h)) for h in range(hours)])


def _hourly(daily: list[float], rng: np.random.Generator) -> np.ndarray:
    """(hours, 3) arrivals per hour and priority (asap, urgent, routine), from midnight
    UTC of ``FIRST``: each day's count split by the local-hour profile."""
    weights = np.asarray(DEFAULT_PROFILE)[_local(24 * len(daily))]
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
    local = _local(hours)
    return np.where((local >= OPENS) & (local < CLOSES), per_hour, 0).astype(np.float64)


def _pit(full: np.ndarray, truth: int, rng: np.random.Generator) -> float:
    below = float((full < truth).mean())
    at = float((np.minimum(full, HORIZON) == min(truth, HORIZON)).mean())
    return below + rng.uniform() * at


@dataclass(frozen=True)
class Replay:
    """A département's replay: arrivals and capacity per hour, the local hours."""

    arrivals: np.ndarray
    capacity: np.ndarray
    local: np.ndarray


def backtest(
    departement: str, daily: list[float], paths: int, fit_days: int = 7, prior: float = 0.3
) -> Result:
    """Every hourly forecast of one département, and what happened."""
    rng = np.random.default_rng(2020 + sum(map(ord, departement)))
    arrivals = _hourly(daily, rng)
    hours = len(arrivals)
    replay = Replay(arrivals, _capacity(daily, hours), _local(hours + HORIZON))
    settings = ForecastSettings(
        paths=paths, horizon_hours=HORIZON, fit_days=fit_days, growth_prior_sd=prior
    )
    lead = settings.lead_hours
    cumulative = np.concatenate([[0.0], np.cumsum(replay.capacity)])
    used = 0.0  # places consumed by the bookings (cumulative index), all priorities
    result = Result(departement)
    last = 24 * ((LAST_FORECAST - FIRST).days + 1)
    for t in range(1, last):
        # The hour just gone is booked: the bookings consume the places ahead.
        used = max(used, cumulative[t - 1 + lead]) + float(arrivals[t - 1].sum())
        if t < 24 or len(arrivals) - t < HORIZON:
            continue  # a day of history first; what happened must be known
        _one(replay, t, used - cumulative[t], settings, rng, result)
    return result


def _one(
    replay: Replay,
    t: int,
    taken: float,
    settings: ForecastSettings,
    rng: np.random.Generator,
    result: Result,
) -> None:
    """The forecast issued at hour ``t`` (``taken``: the places ahead already booked),
    the naive ones, and what happened."""
    deadlines = [settings.deadlines[p] for p in BOOKED]
    free = _consume(replay.capacity[t : t + settings.tail_hours], taken)
    opened = replay.capacity[t : t + settings.tail_hours]  # the hours the centres open
    now = datetime(2020, 3, 19, tzinfo=UTC) + timedelta(hours=t)
    seen = replay.arrivals[max(0, t - 24 * settings.fit_days) : t]
    rate = estimate_rate({p: seen[:, i] for i, p in enumerate(BOOKED)}, now, settings)
    simulated = simulate_arrivals(rate, now, settings, rng)
    lead = settings.lead_hours
    full = first_full_hour(simulated, free, [0, 0, 0], deadlines, lead, opened)
    future = replay.arrivals[t : t + HORIZON][None, :, :]
    truth = min(int(first_full_hour(future, free, [0, 0, 0], deadlines, lead, opened)[0]), HORIZON)
    # The naive forecasts: the last 24 hours' arrivals go on at the same rate, flat
    # over the hours (as the issue words it), or with the default hour profile.
    last = seen[-24:].sum(axis=0).astype(np.float64)
    profile = np.asarray(DEFAULT_PROFILE)[replay.local[t : t + HORIZON]]
    mean = np.stack([np.full(HORIZON, 1 / 24), profile])[:, :, None] * last[None, None, :]
    naive = first_full_hour(mean, free, [0, 0, 0], deadlines, lead, opened)
    p10, p50, p90 = (float(np.quantile(full, q, method="inverted_cdf")) for q in (0.1, 0.5, 0.9))
    result.times.append(t)
    result.bands.append((p10, p50, p90))
    result.truth.append(float(truth))
    result.flat_t.append(float(min(naive[0], HORIZON)))
    result.profile_t.append(float(min(naive[1], HORIZON)))
    result.pit_all.append(_pit(full, truth, rng))
    if 0 < truth < HORIZON:  # scored: full within the horizon, not already, as it happened
        result.scored.append(len(result.times) - 1)


def _consume(free: np.ndarray, taken: float) -> np.ndarray:
    """``free`` with ``taken`` places removed from its front (the bookings ahead)."""
    left = np.maximum(np.cumsum(free) - max(taken, 0.0), 0.0)
    return np.diff(left, prepend=0.0)


def _run(args: tuple[str, list[float], int, int, float]) -> Result:
    return backtest(*args)


def _fraction_below(pits: list[float], q: float) -> float:
    return 100.0 * float(np.mean(np.array(pits) < q)) if pits else float("nan")


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--paths", type=int, default=200)
    parser.add_argument("--fit-days", type=int, default=ForecastSettings.fit_days)
    parser.add_argument("--growth-prior", type=float, default=ForecastSettings.growth_prior_sd)
    parser.add_argument("--only", nargs="*", help="départements (default: all metropolitan)")
    parser.add_argument("--figures", type=Path, help="folder for the PNGs (docs/forecast)")
    args = parser.parse_args()
    started, cpu0 = time.monotonic(), os.times()
    admissions = read_admissions(DATA)
    codes = sorted(args.only or admissions)
    jobs = [
        (code, admissions[code], args.paths, args.fit_days, args.growth_prior) for code in codes
    ]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(_run, jobs))
    elapsed = time.monotonic() - started
    every = [p for r in results for p in r.pit_all]
    calibration = {q: _fraction_below(every, q / 100) for q in (10, 50, 90)}
    errors = {of: [e for r in results for e in r.errors(of)] for of in ("ours", "flat", "profile")}
    ours, naive = _median(errors["ours"]), _median(errors["flat"])
    _print_table(results, calibration, errors, elapsed, os.times(), cpu0)
    if args.figures:
        _figures(results, every, args.figures)
    met = all(abs(calibration[q] - q) <= TARGET_POINTS for q in calibration) and (
        naive > 0 and ours <= (1 - TARGET_GAIN) * naive
    )
    gain = f"{100 * (1 - ours / naive):.0f} % lower" if naive else "the naive's is 0"
    print(
        f"forecast targets: {'met' if met else 'missed'} (calibration P10 {calibration[10]:.1f} %, "
        f"P50 {calibration[50]:.1f} %, P90 {calibration[90]:.1f} %; median absolute error of "
        f"the median {ours:.1f} h vs naive {naive:.1f} h, {gain})"
    )


BANDS = ((1, 12), (12, 24), (24, HORIZON))


def _print_table(
    results: list[Result],
    calibration: dict[int, float],
    errors: dict[str, list[float]],
    elapsed: float,
    cpu1: os.times_result,
    cpu0: os.times_result,
) -> None:
    issued = sum(len(r.times) for r in results)
    scored = sum(len(r.scored) for r in results)
    full_now = sum(1 for r in results for t in r.truth if t == 0)
    cpu = (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"commit {commit}; {len(results)} départements, {issued} forecasts issued, {scored} "
        f"scored (realised hours until full 1 to 71; {full_now} issued already full)"
    )
    loads = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"wall {elapsed:.0f} s, worker CPU {cpu:.0f} s, load average {loads} (1, 5, 15 min)")
    outcome = [r.pit_all[i] for r in results for i in r.scored]
    ahead = [p for r in results for p, b in zip(r.pit_all, r.bands, strict=True) if b[0] < HORIZON]
    print("| measure | forecast | target |")
    print("| --- | --- | --- |")
    for q in (10, 50, 90):
        print(
            f"| realised below P{q}, every forecast | {calibration[q]:.1f} % "
            f"| {q} ± {TARGET_POINTS:.0f} % |"
        )
    for name, pits in (("its P10 within 72 h", ahead), ("the scored ones (biased)", outcome)):
        shown = " / ".join(f"{_fraction_below(pits, q / 100):.1f}" for q in (10, 50, 90))
        print(f"| same, forecasts {name}: P10 / P50 / P90 | {shown} % | — |")
    ours, flat, profile = (_median(errors[of]) for of in ("ours", "flat", "profile"))
    print(
        f"| median abs. error of the median | {ours:.1f} h | ≤ {(1 - TARGET_GAIN) * flat:.1f} h |"
    )
    print(f"| same, naive: last 24 h rate, flat | {flat:.1f} h | — |")
    print(f"| same, naive: last 24 h rate, hour profile | {profile:.1f} h | — |")
    for low, high in BANDS:
        picked = [
            tuple(r.errors(of)[k] for of in ("ours", "flat", "profile"))
            for r in results
            for k, i in enumerate(r.scored)
            if low <= r.truth[i] < high
        ]
        medians = " / ".join(f"{_median([p[j] for p in picked]):.1f}" for j in range(3))
        print(
            f"| realised {low}-{high} h ({len(picked)}): error of the median, forecast / flat / "
            f"profile | {medians} h | — |"
        )
    print(
        f"mean absolute error of the median {np.mean(errors['ours']):.2f} h vs naive flat "
        f"{np.mean(errors['flat']):.2f} h, profile {np.mean(errors['profile']):.2f} h"
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
    ax.plot(x, result.flat_t, color="orange", linewidth=0.8, label="naïf (rythme des 24 h)")
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
