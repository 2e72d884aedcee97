"""When a département's centres will be full, and how many boxes must open to hold the
deadlines: the ARS's question of the day before (issue 31). Plain functions of hourly
arrays; the caller reads the arrivals, the schedules and the bookings, and gives ``now``.

**The arrival rate** (``estimate_rate``). The oriented patients of the last
``fit_days`` (7) are counted in 24-hour windows ending now (so the hour-of-day profile
cancels out of them; the days before the first arrival seen are not history: a service
just deployed has seen nothing, which is no evidence of growth) and fitted by a Poisson
log-linear regression,
``log E[y_j] = a + b j`` (day ``j``, 0 the last), by iteratively reweighted least
squares with a weak Gaussian prior on the growth ``b`` (mean 0, sd ``growth_prior_sd``
per day): with a day or two of history the rate is the count, not a line through two
noisy points. The rate now is the fit half a day after the last window's middle; the
uncertainty of ``(a, b)`` is the inverse of the fit's information matrix, times the
day-to-day over-dispersion ``phi`` (Pearson's statistic over the degrees of freedom,
at least 1). Each priority's share is its count of the last days, smoothed by one
arrival per priority. The hour-of-day profile is the recent arrivals' by local hour,
shrunk towards ``DEFAULT_PROFILE`` (referrals follow the GP surgeries' hours) with the
weight of ``profile_prior`` arrivals.

**The arrivals to come** (``simulate_arrivals``): each path draws ``(a, b)`` from the
fit's normal approximation (within three standard deviations and a factor 4, no faster than
doubling or halving in a day: a fit on two noisy days may be that wide), each future
day a gamma level of mean 1 whose variance makes the day's count negative-binomial
with variance ``phi`` times its mean (the over-dispersion is between days, as in the
data: a busy day is busy all day), and each hour's arrivals per priority are Poisson
at ``exp(a + b t)`` x profile x share x level.

**The booking rule** (``first_full_hour``), per path, in hours from now: ``free[h]``
free places start in hour ``h`` (already booked ones out, ``free_places_by_hour``);
``F`` their running sum. Patients take the earliest free place at least ``lead_hours``
ahead, most urgent first (the policy's reserve for the urgent priorities: a routine
patient never takes a place an urgent one needs, ``policy.py``), and a place nobody
took when it started is lost. So the patients of priorities up to rank ``r`` have
consumed the free places up to index ``p_r``, a Lindley recursion in places:

    p_r <- max(p_r, F[h + lead]) + arrivals of rank <= r in hour h

starting from the waiting list of ranks up to ``r``; hour ``h`` is **full** when, for
some priority, ``p_r > F[h + deadline_r]``: a patient of it arriving then has no place
left before their deadline. A deadline under a day (asap, 6 h) runs in the hours the
centres open (``deadline_ends``): at 21:00 nothing opens before the morning, and no
number of boxes open by day would serve it by 03:00; a day or more runs on the wall
clock. ``hours until full`` is the first such hour (0: full now),
its 10th, 50th and 90th percentiles over the paths, ``None`` when not within the
horizon (72 h).

**Boxes needed** (``boxes_needed``): the fewest boxes to add (each ``box_places[h]``
more places in hour ``h``, from the lead on) for the paths with no full hour within 24 h
(or 72 h) to be at least ``service_probability`` (90 %): every priority served within
its deadline with that probability, by the same simulation of the booking rule (an
Erlang C formula would assume a stationary rate and servers always open; the wave's
rate doubles in days and centres close at night). Found by bisection on the same paths.
``reserve_to_open`` names the reserve centres (declared, not active) nearest the
demand that would supply them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.slots import free_slots
from shared.events import Priority
from shared.geo import haversine_km

Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

# Referrals by local hour (GP surgeries' hours, a little at night), summing to 1.
_RAW_PROFILE = (1, 1, 1, 1, 1, 1, 2, 4, 7, 9, 9, 8, 6, 7, 8, 8, 8, 7, 6, 5, 4, 3, 2, 1)
DEFAULT_PROFILE: tuple[float, ...] = tuple(w / sum(_RAW_PROFILE) for w in _RAW_PROFILE)

# The protocol's deadlines (services/regulation/protocols/v1.json): asap 6 h, routine
# 24 h; urgent, which v1 does not give, between them. Stat is escalated, never booked.
DEFAULT_DEADLINES: Mapping[Priority, int] = MappingProxyType(
    {Priority.ASAP: 6, Priority.URGENT: 12, Priority.ROUTINE: 24}
)
BOOKED = tuple(p for p in Priority if p is not Priority.STAT)
# The fastest daily growth (log) a simulated path may have: doubling in a day.
MAX_GROWTH = math.log(2)


@dataclass(frozen=True)
class ForecastSettings:
    """The forecast's parameters (the module says what each does)."""

    fit_days: int = 7
    growth_prior_sd: float = 0.3
    profile_prior: float = 200.0
    paths: int = 400
    horizon_hours: int = 72
    lead_hours: int = 1
    service_probability: float = 0.9
    max_boxes: int = 400
    deadlines: Mapping[Priority, int] = field(default_factory=lambda: DEFAULT_DEADLINES)
    timezone: str = "Europe/Paris"

    def __post_init__(self) -> None:
        if self.fit_days < 1 or self.paths < 1 or self.horizon_hours < 1:
            raise ValueError("fit_days, paths and horizon_hours must be positive")
        if not 0 < self.service_probability < 1 or self.lead_hours < 0:
            raise ValueError("service_probability in (0, 1), lead_hours not negative")

    @property
    def tail_hours(self) -> int:
        """Hours of free places the horizon looks at: its end plus the longest deadline."""
        return self.horizon_hours + max(self.deadlines.values(), default=0) + self.lead_hours


@dataclass(frozen=True)
class ArrivalRate:
    """The fitted arrival rate: per day now, its daily growth (log), their covariance,
    the over-dispersion between days, the priorities' shares and the hour profile."""

    per_day: float
    growth: float = 0.0
    covariance: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))
    dispersion: float = 1.0
    shares: Mapping[Priority, float] = field(
        default_factory=lambda: MappingProxyType({Priority.ROUTINE: 1.0})
    )
    profile: tuple[float, ...] = DEFAULT_PROFILE


@dataclass(frozen=True)
class Forecast:
    """Hours until full (P10, P50, P90; ``None``: not within the horizon), the chance
    of being full within it, the rate, and the boxes to add for 24 h and 72 h."""

    hours_until_full: tuple[int | None, int | None, int | None]
    full_within_horizon: float
    rate: ArrivalRate
    boxes_24h: int
    boxes_72h: int


def hourly_counts(times: Iterable[datetime], now: datetime, hours: int) -> Counts:
    """Arrivals per hour over the ``hours`` hours ending at ``now``, oldest first."""
    counts = np.zeros(hours, dtype=np.int64)
    for moment in times:
        ago = (now - moment).total_seconds() / 3600
        if 0 <= ago < hours:
            counts[hours - 1 - int(ago)] += 1
    return counts


def _fit_growth(days: Floats, prior_sd: float) -> tuple[Floats, Floats, float]:
    """(a, b), their covariance and phi of the Poisson log-linear fit (module)."""
    x = np.arange(-len(days) + 1, 1, dtype=np.float64)
    design = np.column_stack([np.ones_like(x), x])
    penalty = np.diag([0.0, 1.0 / prior_sd**2])
    beta = np.array([math.log(max(days.mean(), 0.5)), 0.0])
    info = penalty
    for _ in range(25):
        mu = np.exp(design @ beta)
        info = design.T @ (design * mu[:, None]) + penalty
        score = design.T @ (days - mu) - penalty @ beta
        step = np.linalg.solve(info, score)
        beta = beta + step
        if float(np.abs(step).max()) < 1e-8:
            break
    mu = np.exp(design @ beta)
    free = max(1, len(days) - 2)
    phi = max(1.0, float(((days - mu) ** 2 / np.maximum(mu, 1e-9)).sum()) / free)
    covariance = np.linalg.inv(info) * phi
    return beta, covariance, phi


def estimate_rate(
    hourly: Mapping[Priority, Counts], now: datetime, settings: ForecastSettings
) -> ArrivalRate:
    """The arrival rate from each priority's arrivals per hour over the last days
    (oldest first, the last hour ending at ``now``; any length, up to ``fit_days``
    whole days are fitted)."""
    series = [np.asarray(c, dtype=np.int64) for c in hourly.values()]
    total = np.sum(np.stack(series), axis=0) if series else np.zeros(0, np.int64)
    whole = min(settings.fit_days, len(total) // 24)
    if whole == 0 or int(total.sum()) == 0:
        return ArrivalRate(per_day=0.0)
    days = total[len(total) - 24 * whole :].reshape(whole, 24).sum(axis=1).astype(np.float64)
    # The days before the first arrival seen are no history (a service just deployed).
    days = days[int(np.argmax(days > 0)) :]
    beta, cov, phi = _fit_growth(days, settings.growth_prior_sd)
    # The last window's middle is half a day ago: the rate now is half a day further.
    a_now = float(beta[0] + beta[1] * 0.5)
    shares = {p: float(np.asarray(c).sum()) + 1.0 for p, c in hourly.items()}
    norm = sum(shares.values())
    return ArrivalRate(
        per_day=math.exp(a_now),
        growth=float(beta[1]),
        covariance=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        dispersion=phi,
        shares=MappingProxyType({p: s / norm for p, s in shares.items()}),
        profile=_profile(total, now, settings),
    )


def local_hours(start: datetime, hours: int, timezone: str) -> Counts:
    """The local hour of each of the ``hours`` hours from ``start`` (an aware time) on:
    one offset when both ends share it (no clock change lies between them in a week),
    hour by hour otherwise."""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone)
    last = (start + timedelta(hours=max(hours - 1, 0))).astimezone(zone)
    if first.utcoffset() == last.utcoffset():
        return (first.hour + np.arange(hours, dtype=np.int64)) % 24
    return np.array([(start + timedelta(hours=h)).astimezone(zone).hour for h in range(hours)])


def _profile(total: Counts, now: datetime, settings: ForecastSettings) -> tuple[float, ...]:
    # The oldest of the counts is the hour starting len(total) hours before now.
    hours = local_hours(now - timedelta(hours=len(total)), len(total), settings.timezone)
    by_hour = np.bincount(hours, weights=np.asarray(total, dtype=np.float64), minlength=24)
    prior = np.array(DEFAULT_PROFILE) * settings.profile_prior
    mixed = (by_hour + prior) / (by_hour.sum() + settings.profile_prior)
    return tuple(float(w) for w in mixed)


def simulate_arrivals(
    rate: ArrivalRate,
    now: datetime,
    settings: ForecastSettings,
    rng: np.random.Generator,
    priorities: Sequence[Priority] = BOOKED,
) -> Counts:
    """Arrivals per path, hour and priority over the horizon: shape
    (paths, horizon_hours, len(priorities)) (module, the arrivals to come)."""
    paths, hours = settings.paths, settings.horizon_hours
    out = np.zeros((paths, hours, len(priorities)), dtype=np.int64)
    if rate.per_day <= 0:
        return out
    mean = np.array([math.log(rate.per_day), rate.growth])
    params = rng.multivariate_normal(mean, np.array(rate.covariance), size=paths)
    # A fit on a few noisy days may be wide: no path doubles, or halves, in under a day,
    # nor starts more than three standard deviations (at most a factor 4) from the rate.
    spread = min(3 * math.sqrt(max(rate.covariance[0][0], 0.0)), math.log(4))
    params[:, 0] = params[:, 0].clip(mean[0] - spread, mean[0] + spread)
    params[:, 1] = params[:, 1].clip(-MAX_GROWTH, MAX_GROWTH)
    local = local_hours(now, hours, settings.timezone)
    t_days = (np.arange(hours) + 0.5) / 24.0
    per_hour = np.exp(params[:, :1] + params[:, 1:] * t_days[None, :])  # per day
    per_hour *= np.asarray(rate.profile)[local][None, :]
    per_hour = per_hour * _day_levels(rate, per_hour, rng)
    for i, priority in enumerate(priorities):
        share = rate.shares.get(priority, 0.0)
        if share > 0:
            out[:, :, i] = rng.poisson(per_hour * share)
    return out


def _day_levels(rate: ArrivalRate, per_hour: Floats, rng: np.random.Generator) -> Floats:
    """A gamma level per path and future day (blocks of 24 hours from now), of mean 1,
    that makes each day's count negative-binomial with variance phi x mean."""
    hours = per_hour.shape[1]
    if rate.dispersion <= 1.0:
        return np.ones_like(per_hour)
    levels = np.ones_like(per_hour)
    for start in range(0, hours, 24):
        day_mean = per_hour[:, start : start + 24].sum(axis=1)
        # At least 1: a day at most about as variable as an exponential's.
        shape = np.maximum(day_mean / (rate.dispersion - 1.0), 1.0)
        draw = rng.gamma(shape, 1.0 / shape)
        levels[:, start : start + 24] = draw[:, None]
    return levels


def first_full_hour(
    arrivals: Counts,
    free: Floats,
    waiting: Sequence[int],
    deadlines: Sequence[int],
    lead_hours: int,
    open_hours: Floats | None = None,
) -> Counts:
    """Per path, the first hour some priority's patient has no place left before their
    deadline (module, the booking rule); ``horizon`` (arrivals' second axis) when none.
    ``arrivals``: (paths, hours, priorities), most urgent first; ``free``: free places
    per hour from now, at least hours + lead + the longest deadline long; ``waiting``:
    the waiting list per priority; ``open_hours``: the hours the centres open (module:
    a deadline under a day runs in them; ``None``: always open)."""
    paths, hours = arrivals.shape[:2]
    cumulative = np.concatenate([[0.0], np.cumsum(free, dtype=np.float64)])
    need = hours + lead_hours + max(deadlines, default=0)
    if len(cumulative) <= need:
        cumulative = np.concatenate(
            [cumulative, np.full(need + 1 - len(cumulative), cumulative[-1])]
        )
    upto = np.cumsum(arrivals, axis=2, dtype=np.float64)
    ends = deadline_ends(hours, deadlines, open_hours, len(cumulative) - 1)
    limits = cumulative[ends]
    # The recursion p_h = max(p_{h-1}, C_h) + a_h, with S_h the arrivals up to hour h,
    # is p_h = S_h + max(p_-1, max over k <= h of (C_k - S_{k-1})): no loop over hours.
    total = np.cumsum(upto, axis=1)
    before = np.concatenate([np.zeros((paths, 1, upto.shape[2])), total[:, :-1, :]], axis=1)
    opened = cumulative[lead_hours : lead_hours + hours][None, :, None] - before
    start = np.cumsum(np.asarray(waiting, dtype=np.float64))[None, None, :]
    position = total + np.maximum(start, np.maximum.accumulate(opened, axis=1))
    over: npt.NDArray[np.bool_] = np.any(position > limits[None, :, :] + 1e-9, axis=2)
    first: Counts = np.where(np.any(over, axis=1), np.argmax(over, axis=1), hours)
    return first.astype(np.int64)


def deadline_ends(
    hours: int, deadlines: Sequence[int], open_hours: Floats | None, last: int
) -> Counts:
    """(hours, priorities): the hour (from now) before which a patient arriving in each
    hour must have their place. A deadline of a day or more runs on the wall clock; a
    shorter one (asap 6 h) in the hours the centres open, so that a patient oriented at
    21:00 is due by the morning's first hours, not by 03:00 when nothing opens."""
    arrival = np.arange(hours)
    ends = np.zeros((hours, len(deadlines)), dtype=np.int64)
    opened = None
    if open_hours is not None:
        mask = np.resize(np.asarray(open_hours) > 0, last)
        opened = np.concatenate([[0], np.cumsum(mask)])
    for i, deadline in enumerate(deadlines):
        if opened is None or deadline >= 24:
            ends[:, i] = arrival + deadline
        else:
            ends[:, i] = np.searchsorted(opened, opened[arrival] + deadline, side="left")
    return np.minimum(ends, last)


def percentiles(full: Counts, horizon: int) -> tuple[int | None, int | None, int | None]:
    """P10, P50, P90 of the first full hour; ``None`` where past the horizon."""
    values = np.sort(full)
    out: list[int | None] = []
    for q in (0.1, 0.5, 0.9):
        value = int(values[min(len(values) - 1, math.ceil(q * len(values)) - 1)])
        out.append(None if value >= horizon else value)
    return out[0], out[1], out[2]


def boxes_needed(
    arrivals: Counts,
    free: Floats,
    waiting: Sequence[int],
    box_places: Floats,
    within_hours: int,
    settings: ForecastSettings,
    open_hours: Floats | None = None,
) -> int:
    """The fewest boxes to add for no full hour within ``within_hours`` on at least
    ``service_probability`` of the paths (module, boxes needed); ``max_boxes`` when even
    that many are not enough. ``arrivals``' priorities are ``BOOKED``."""
    window = arrivals[:, :within_hours, :]
    deadlines = [settings.deadlines[p] for p in BOOKED]
    length = len(free)
    added = np.zeros(length)
    start = min(length, settings.lead_hours)
    added[start:] = np.resize(box_places, length)[start:]

    def enough(boxes: int) -> bool:
        more = free + boxes * added
        full = first_full_hour(window, more, waiting, deadlines, settings.lead_hours, open_hours)
        return float((full >= within_hours).mean()) >= settings.service_probability

    if enough(0):
        return 0
    low, high = 0, 1
    while not enough(high):
        if high >= settings.max_boxes:
            return settings.max_boxes
        low, high = high, min(high * 2, settings.max_boxes)
    return _bisect(enough, low, high)


def _bisect(enough: Callable[[int], bool], low: int, high: int) -> int:
    """The least n in (low, high] with enough(n), enough(low) false, enough(high) true."""
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


def forecast(
    rate: ArrivalRate,
    free: Floats,
    waiting: Mapping[Priority, int],
    box_places: Floats,
    now: datetime,
    settings: ForecastSettings,
    seed: int = 0,
    open_hours: Floats | None = None,
) -> Forecast:
    """The département's forecast from its arrival rate, its free places per hour from
    now (``free_places_by_hour``), its waiting list per priority, the places one more
    box gives per hour (``box_places_by_hour``) and the hours its centres open."""
    rng = np.random.default_rng(seed)
    arrivals = simulate_arrivals(rate, now, settings, rng)
    queue = [waiting.get(p, 0) for p in BOOKED]
    deadlines = [settings.deadlines[p] for p in BOOKED]
    full = first_full_hour(arrivals, free, queue, deadlines, settings.lead_hours, open_hours)
    horizon = settings.horizon_hours
    day = min(24, horizon)
    return Forecast(
        hours_until_full=percentiles(full, horizon),
        full_within_horizon=float((full < horizon).mean()),
        rate=rate,
        boxes_24h=boxes_needed(arrivals, free, queue, box_places, day, settings, open_hours),
        boxes_72h=boxes_needed(arrivals, free, queue, box_places, horizon, settings, open_hours),
    )


def free_places_by_hour(
    schedules: Iterable[CentreSchedule],
    booked: Mapping[str, Iterable[tuple[datetime, int]]],
    now: datetime,
    hours: int,
) -> Floats:
    """Free places (slot x box not booked) starting in each hour from ``now`` on, over
    ``hours`` hours, summed over the département's active centres (``slots.py``: the
    schedules as changed, a centre counted from its first day)."""
    places = np.zeros(hours)
    end = now + timedelta(hours=hours)
    for schedule in schedules:
        taken = frozenset(booked.get(schedule.centre_id, ()))
        for start, _, _ in free_slots(schedule, now, end, taken):
            places[int((start - now).total_seconds() // 3600)] += 1
    return places


def box_places_by_hour(
    opens: int, closes: int, consultation_minutes: int, now: datetime, hours: int, timezone: str
) -> Floats:
    """Places one more box gives per hour from ``now``: open from local hour ``opens``
    to ``closes`` every day, one patient per ``consultation_minutes``."""
    zone = ZoneInfo(timezone)
    per_hour = 60.0 / consultation_minutes
    return np.array(
        [
            per_hour if opens <= (now + timedelta(hours=h)).astimezone(zone).hour < closes else 0.0
            for h in range(hours)
        ]
    )


@dataclass(frozen=True)
class ReserveCentre:
    """A centre declared and not active: where it is and the boxes it would open."""

    centre_id: str
    lat: float
    lon: float
    boxes: int


def reserve_to_open(
    reserves: Sequence[ReserveCentre], near: tuple[float, float], boxes: int
) -> list[ReserveCentre]:
    """The reserve centres nearest ``near`` (the demand's centre of gravity) whose boxes
    together cover ``boxes``; all of them when they do not."""
    chosen: list[ReserveCentre] = []
    covered = 0
    for centre in sorted(reserves, key=lambda c: haversine_km(near[0], near[1], c.lat, c.lon)):
        if covered >= boxes:
            break
        chosen.append(centre)
        covered += centre.boxes
    return chosen
