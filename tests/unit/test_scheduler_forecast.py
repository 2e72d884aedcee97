"""The saturation forecast (services/scheduler/domain/forecast.py) on cases computed by
hand: a constant rate against a known capacity (the Poisson percentiles), no arrivals,
a waiting list and no place, a centre that opens inside the horizon, a doubling wave."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from types import MappingProxyType

import numpy as np
import pytest

from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.forecast import (
    ArrivalRate,
    ForecastSettings,
    ReserveCentre,
    deadline_ends,
    estimate_rate,
    first_full_hour,
    forecast,
    free_places_by_hour,
    reserve_to_open,
)
from shared.events import OpeningPeriod, Priority

NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Paris
FLAT = tuple(1 / 24 for _ in range(24))
ROUTINE_ONLY = MappingProxyType({Priority.ROUTINE: 1.0})


def _settings(**kw: object) -> ForecastSettings:
    return ForecastSettings(**kw)  # type: ignore[arg-type]


def _poisson_sf(c: int, mean: float) -> float:
    return 1 - sum(math.exp(-mean) * mean**k / math.factorial(k) for k in range(c + 1))


def test_constant_rate_against_a_known_capacity_gives_the_poisson_percentiles() -> None:
    # One arrival an hour; 12 places, all starting in hours 24-47, a deadline of 48 h:
    # no place is lost before hour 24, so hour h is full when the arrivals of hours
    # 0..h exceed 12: P(T <= h) = P(Poisson(h + 1) > 12). By hand: P(Poisson(8) > 12)
    # = 0.064, P(Poisson(9) > 12) = 0.124 -> P10 = 8; P(Poisson(12) > 12) = 0.424,
    # P(Poisson(13) > 12) = 0.537 -> P50 = 12; P(Poisson(17) > 12) = 0.865,
    # P(Poisson(18) > 12) = 0.908 -> P90 = 17.
    assert _poisson_sf(12, 9) == pytest.approx(0.124, abs=1e-3)
    assert _poisson_sf(12, 18) == pytest.approx(0.908, abs=1e-3)
    deadlines = {Priority.ASAP: 48, Priority.URGENT: 48, Priority.ROUTINE: 48}
    settings = _settings(paths=20_000, horizon_hours=24, deadlines=deadlines)
    free = np.zeros(80)
    free[24:48] = 0.5
    rate = ArrivalRate(per_day=24.0, shares=ROUTINE_ONLY, profile=FLAT)
    result = forecast(rate, free, {}, np.zeros(80), NOW, settings, seed=7)
    assert result.hours_until_full == (8, 12, 17)
    assert result.full_within_horizon == pytest.approx(_poisson_sf(12, 24), abs=0.01)


def test_no_arrivals_never_fill_and_ask_for_no_box() -> None:
    settings = _settings(paths=200)
    hourly = {Priority.ROUTINE: np.zeros(7 * 24, dtype=np.int64)}
    rate = estimate_rate(hourly, NOW, settings)
    assert rate.per_day == 0
    result = forecast(rate, np.zeros(settings.tail_hours), {}, np.ones(200), NOW, settings)
    assert result.hours_until_full == (None, None, None)
    assert (result.full_within_horizon, result.boxes_24h, result.boxes_72h) == (0.0, 0, 0)


def test_a_waiting_list_and_no_place_is_full_now_and_one_box_serves_it() -> None:
    # Five routine patients wait, no free place: full at hour 0. One box gives three
    # places an hour from hour 1 (the lead): 69 before the 24-hour deadline, enough.
    settings = _settings(paths=200)
    rate = ArrivalRate(per_day=0.0)
    box = np.full(settings.tail_hours, 3.0)
    result = forecast(
        rate, np.zeros(settings.tail_hours), {Priority.ROUTINE: 5}, box, NOW, settings
    )
    assert result.hours_until_full == (0, 0, 0)
    assert result.boxes_24h == 1 and result.boxes_72h == 1


def _centre(first_day: date) -> CentreSchedule:
    hours = tuple(OpeningPeriod(weekday=d, opens="08:00", closes="20:00") for d in range(7))
    return CentreSchedule("c1", 48.1, -1.68, "35", hours, 2, 30, first_day)


def test_a_centre_opening_tomorrow_gives_places_from_its_first_hour_on() -> None:
    # Now is 10:00 in Paris; the centre opens tomorrow 08:00, 22 hours from now, with
    # two boxes of 30 minutes: 4 places an hour until 20:00 (hour 34), then none.
    places = free_places_by_hour([_centre(date(2026, 3, 17))], {}, NOW, 48)
    expected = np.zeros(48)
    expected[22:34] = 4  # and the day after from 08:00 (hour 46)
    expected[46:48] = 4
    assert places.tolist() == expected.tolist()
    # Opening today instead: from now (10:00) to 20:00, then tomorrow again. A booked
    # place is not free.
    today = free_places_by_hour(
        [_centre(date(2026, 3, 16))],
        {"c1": [(datetime(2026, 3, 16, 9, 30, tzinfo=UTC), 1)]},
        NOW,
        48,
    )
    assert today[:10].tolist() == [3] + [4] * 9 and today[10:22].sum() == 0


def test_a_centre_opening_inside_the_horizon_pushes_saturation_back() -> None:
    settings = _settings(paths=2000)
    rate = ArrivalRate(per_day=48.0, shares=ROUTINE_ONLY, profile=FLAT)
    none = np.zeros(settings.tail_hours)
    opening = free_places_by_hour([_centre(date(2026, 3, 17))], {}, NOW, settings.tail_hours)
    box = np.full(settings.tail_hours, 0.5)
    without = forecast(rate, none, {}, box, NOW, settings)
    with_centre = forecast(rate, opening, {}, box, NOW, settings)
    # Without any place, the first arrival (2 an hour) finds none: full in hour 0 or 1.
    assert without.hours_until_full[1] == 0
    p50 = with_centre.hours_until_full[1]
    # With it, the arrivals of the first hours are booked tomorrow (22-33); 48 places
    # a day for 48 arrivals a day, but the night's places are lost.
    assert p50 is not None and p50 >= 10
    # Half a place an hour per box: 4 boxes hold 2 arrivals an hour for 72 h, fewer
    # with the centre.
    assert with_centre.boxes_24h < without.boxes_24h
    assert with_centre.boxes_72h < without.boxes_72h == 4


def test_the_rate_of_a_wave_doubling_every_two_days_is_fitted() -> None:
    days = [120 * 2 ** (j / 2) for j in range(7)]
    hourly = np.concatenate([np.full(24, d / 24) for d in days]).round().astype(np.int64)
    rate = estimate_rate({Priority.ROUTINE: hourly}, NOW, _settings())
    assert rate.growth == pytest.approx(math.log(2) / 2, abs=0.02)
    # The last 24 hours' middle is half a day ago: now is a quarter of a doubling on.
    assert rate.per_day == pytest.approx(hourly[-24:].sum() * 2**0.25, rel=0.03)
    assert rate.dispersion == pytest.approx(1.0, abs=0.05)


def test_urgent_patients_are_served_first_within_their_shorter_deadline() -> None:
    # One path, hour 0: 3 routine arrivals and 2 asap; 4 places in hour 3 only. The
    # asap ones (deadline 6) take two of them; the routine ones (deadline 24) find two
    # left for three: full at hour 0 for them, not for the asap.
    arrivals = np.zeros((1, 5, 3), dtype=np.int64)
    arrivals[0, 0] = [2, 0, 3]
    free = np.zeros(40)
    free[3] = 4
    assert first_full_hour(arrivals, free, [0, 0, 0], [6, 12, 24], 1).tolist() == [0]
    arrivals[0, 0] = [2, 0, 2]
    assert first_full_hour(arrivals, free, [0, 0, 0], [6, 12, 24], 1).tolist() == [5]
    arrivals[0, 0] = [5, 0, 0]
    assert first_full_hour(arrivals, free, [0, 0, 0], [2, 12, 24], 1).tolist() == [0]


def test_the_reserve_centres_nearest_the_demand_cover_the_boxes() -> None:
    reserves = [
        ReserveCentre("far", 48.9, 2.35, 4),
        ReserveCentre("near", 48.12, -1.68, 1),
        ReserveCentre("next", 48.2, -1.7, 2),
    ]
    chosen = reserve_to_open(reserves, (48.11, -1.68), 3)
    assert [c.centre_id for c in chosen] == ["near", "next"]
    assert [c.centre_id for c in reserve_to_open(reserves, (48.11, -1.68), 0)] == []


def test_a_deadline_under_a_day_runs_in_the_opening_hours() -> None:
    # Centres open hours 8-19 and 32-43. Oriented at hour 10, asap (6 h) is due by 16;
    # at hour 21, nothing opens before 32: due by 38, the morning's sixth hour. Routine
    # (24 h) runs on the wall clock.
    opened = np.zeros(60)
    opened[8:20] = opened[32:44] = 1
    ends = deadline_ends(24, [6, 24], opened, 59)
    assert ends[10].tolist() == [16, 34]
    assert ends[21].tolist() == [38, 45]
    assert deadline_ends(24, [6], None, 59)[21].tolist() == [27]
