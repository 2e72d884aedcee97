"""The scheduler's pure domain: slots from opening hours, and the ranking of places."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.domain.assignment import (
    Candidate,
    Weights,
    order_patients,
    rank_candidates,
)
from services.scheduler.domain.centres import CentreSchedule, ScheduleChange
from services.scheduler.domain.reach import Reach
from services.scheduler.domain.slots import (
    capacity_between,
    free_slots,
    free_slots_latest_first,
    slot_starts,
)
from shared.events import OpeningPeriod, Priority

PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2020, 3, 16)  # first day of the lockdown; before the spring DST change
PATIENT = (48.8566, 2.3522)
# A degree of latitude is about 111 km: these put centres about 2 km and 20 km north.
NEAR = (PATIENT[0] + 0.018, PATIENT[1])
FAR = (PATIENT[0] + 0.18, PATIENT[1])


def paris(day: date, hhmm: str) -> datetime:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=PARIS)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def centre(
    *periods: tuple[int, str, str],
    centre_id: str = "c1",
    boxes: int = 2,
    minutes: int = 20,
    first_day: date = MONDAY,
    place: tuple[float, float] = NEAR,
    changes: tuple[ScheduleChange, ...] = (),
) -> CentreSchedule:
    return CentreSchedule(
        centre_id=centre_id,
        lat=place[0],
        lon=place[1],
        departement="75",
        opening_hours=tuple(OpeningPeriod(weekday=w, opens=o, closes=c) for w, o, c in periods),
        boxes=boxes,
        consultation_minutes=minutes,
        first_day=first_day,
        changes=changes,
    )


def week(start: date = MONDAY) -> tuple[datetime, datetime]:
    return paris(start, "00:00"), paris(start + timedelta(days=7), "00:00")


# -- slots ----------------------------------------------------------------------------


def test_monday_morning_gives_nine_slots_of_two_boxes_and_nothing_on_tuesday() -> None:
    schedule = centre((0, "09:00", "12:00"))
    slots = list(slot_starts(schedule, *week()))

    assert len(slots) == 9
    assert all(boxes == 2 for _, _, boxes in slots)
    # Paris is UTC+1 before the spring change.
    assert slots[0][:2] == (utc(2020, 3, 16, 8), utc(2020, 3, 16, 8, 20))
    assert slots[-1][:2] == (utc(2020, 3, 16, 10, 40), utc(2020, 3, 16, 11))
    assert all(
        start.tzinfo is UTC and end - start == timedelta(minutes=20) for start, end, _ in slots
    )
    assert [s for s, _, _ in slots] == sorted(s for s, _, _ in slots)

    places = list(free_slots(schedule, *week(), booked=set()))
    assert len(places) == 18
    assert places[:3] == [
        (utc(2020, 3, 16, 8), utc(2020, 3, 16, 8, 20), 1),
        (utc(2020, 3, 16, 8), utc(2020, 3, 16, 8, 20), 2),
        (utc(2020, 3, 16, 8, 20), utc(2020, 3, 16, 8, 40), 1),
    ]
    tuesday = MONDAY + timedelta(days=1)
    assert list(slot_starts(schedule, paris(tuesday, "00:00"), paris(tuesday, "23:59"))) == []
    assert capacity_between(schedule, *week()) == 18


def test_a_slot_that_would_end_after_closing_is_not_produced() -> None:
    schedule = centre((0, "09:00", "10:50"))
    slots = list(slot_starts(schedule, *week()))

    # 10:40-11:00 would overrun 10:50.
    assert [start.astimezone(PARIS).strftime("%H:%M") for start, _, _ in slots] == [
        "09:00",
        "09:20",
        "09:40",
        "10:00",
        "10:20",
    ]
    assert all(end <= paris(MONDAY, "10:50") for _, end, _ in slots)


def test_the_window_keeps_starts_at_or_after_its_start_and_before_its_end() -> None:
    schedule = centre((0, "09:00", "12:00"))
    slots = list(slot_starts(schedule, paris(MONDAY, "09:10"), paris(MONDAY, "10:00")))

    assert [start.astimezone(PARIS).strftime("%H:%M") for start, _, _ in slots] == [
        "09:20",
        "09:40",
    ]
    assert len(list(slot_starts(schedule, paris(MONDAY, "09:20"), paris(MONDAY, "09:40")))) == 1


def test_no_slot_before_the_first_day() -> None:
    second_monday = MONDAY + timedelta(days=7)
    schedule = centre((0, "09:00", "12:00"), first_day=second_monday)
    slots = list(slot_starts(schedule, paris(MONDAY, "00:00"), paris(second_monday, "23:59")))

    assert len(slots) == 9
    assert {start.astimezone(PARIS).date() for start, _, _ in slots} == {second_monday}


def test_spring_dst_change_gives_the_right_utc_times() -> None:
    # Europe/Paris goes from UTC+1 to UTC+2 at 02:00 on Sunday 2020-03-29.
    schedule = centre((6, "09:00", "10:00"))
    week_before = [s for s, _, _ in slot_starts(schedule, *week())]
    dst_sunday = [s for s, _, _ in slot_starts(schedule, *week(date(2020, 3, 23)))]

    assert week_before == [utc(2020, 3, 22, 8), utc(2020, 3, 22, 8, 20), utc(2020, 3, 22, 8, 40)]
    assert dst_sunday == [utc(2020, 3, 29, 7), utc(2020, 3, 29, 7, 20), utc(2020, 3, 29, 7, 40)]


def test_a_night_period_across_the_spring_change_lasts_the_hours_really_open() -> None:
    # 01:00-04:00 local on the night of the change is two real hours: six slots, no two
    # of them at the same instant (03:00 local is 01:00 UTC).
    schedule = centre((6, "01:00", "04:00"))
    slots = list(slot_starts(schedule, *week(date(2020, 3, 23))))

    assert [s for s, _, _ in slots] == [utc(2020, 3, 29, 0, m) for m in (0, 20, 40)] + [
        utc(2020, 3, 29, 1, m) for m in (0, 20, 40)
    ]
    assert all(end - start == timedelta(minutes=20) for start, end, _ in slots)
    assert slots[-1][1] == paris(date(2020, 3, 29), "04:00")


def test_the_autumn_change_gives_the_repeated_hour_and_24_00_closes_at_midnight() -> None:
    schedule = centre((6, "00:00", "24:00"))
    sunday = date(2020, 10, 25)  # 25 hours long in Paris
    slots = list(slot_starts(schedule, paris(sunday, "00:00"), paris(sunday, "23:59")))

    assert len(slots) == 75
    assert slots[0][0] == utc(2020, 10, 24, 22)
    assert slots[-1][1] == utc(2020, 10, 25, 23)  # Monday 00:00 CET
    assert all(b[0] == a[1] for a, b in pairwise(slots))


def test_overlapping_periods_never_give_a_box_two_consultations_at_once() -> None:
    schedule = centre((0, "09:00", "10:00"), (0, "09:30", "10:30"))
    starts = [s for s, _, _ in slot_starts(schedule, *week())]

    assert len(starts) == 4  # 09:00-10:30 as one period
    assert starts == sorted(set(starts))


def test_booked_places_are_skipped_whatever_zone_they_are_given_in() -> None:
    schedule = centre((0, "09:00", "10:00"))
    first = paris(MONDAY, "09:00")
    booked = [(first, 1), (utc(2020, 3, 16, 8, 20), 2)]
    places = [
        (s.astimezone(PARIS).strftime("%H:%M"), box)
        for s, _, box in free_slots(schedule, *week(), booked)
    ]

    assert places == [("09:00", 2), ("09:20", 1), ("09:40", 1), ("09:40", 2)]


@pytest.mark.parametrize(
    ("periods", "start", "end"),
    [
        # Every day, a window cut in the middle of two days.
        (tuple((d, "08:00", "20:00") for d in range(7)), (MONDAY, "10:10"), (MONDAY, "23:00")),
        (
            tuple((d, "08:00", "12:00") for d in range(7)),
            (MONDAY, "11:00"),
            (date(2020, 3, 18), "09:00"),
        ),
        # Both changes of the clock, a night open across them, two periods a day.
        (
            ((6, "01:00", "04:00"), (6, "10:00", "11:00")),
            (date(2020, 3, 28), "00:00"),
            (date(2020, 3, 30), "00:00"),
        ),
        (((6, "00:00", "24:00"),), (date(2020, 10, 24), "22:00"), (date(2020, 10, 26), "02:00")),
        # Before the centre's first day, and a window with nothing in it.
        (((0, "09:00", "10:00"),), (date(2020, 3, 9), "00:00"), (date(2020, 3, 17), "00:00")),
        (((0, "09:00", "10:00"),), (MONDAY, "10:00"), (MONDAY, "11:00")),
    ],
)
def test_the_latest_free_places_first_are_the_free_places_in_reverse(
    periods: tuple[tuple[int, str, str], ...],
    start: tuple[date, str],
    end: tuple[date, str],
) -> None:
    schedule = centre(*periods, boxes=3)
    window = (paris(*start), paris(*end))
    every = list(free_slots(schedule, *window, ()))
    booked = {(s, b) for i, (s, _, b) in enumerate(every) if i % 3 == 1}
    expected = list(reversed(list(free_slots(schedule, *window, booked))))

    assert list(free_slots_latest_first(schedule, *window, booked)) == expected
    assert list(free_slots_latest_first(schedule, *window, ())) == every[::-1]


def test_naive_datetimes_are_refused() -> None:
    schedule = centre((0, "09:00", "12:00"))
    with pytest.raises(ValueError, match="naive"):
        list(slot_starts(schedule, datetime(2020, 3, 16), datetime(2020, 3, 17)))


def test_a_capacity_change_applies_from_its_date_only_and_the_latest_wins_per_field() -> None:
    second, third = MONDAY + timedelta(days=7), MONDAY + timedelta(days=14)
    schedule = centre(
        (0, "09:00", "12:00"),
        changes=(
            # Given out of date order, as a late correction might arrive.
            ScheduleChange(from_date=third, consultation_minutes=30),
            ScheduleChange(from_date=second, boxes=4),
        ),
    )

    def day(d: date) -> list[tuple[datetime, datetime, int]]:
        return list(slot_starts(schedule, paris(d, "00:00"), paris(d, "23:59")))

    assert {boxes for _, _, boxes in day(MONDAY)} == {2}
    assert len(day(MONDAY)) == 9
    assert {boxes for _, _, boxes in day(second)} == {4}
    assert len(day(second)) == 9
    # The later change only sets the length: the boxes stay as the earlier one left them.
    assert {boxes for _, _, boxes in day(third)} == {4}
    assert len(day(third)) == 6
    assert capacity_between(schedule, paris(MONDAY, "00:00"), paris(third, "23:59")) == (
        9 * 2 + 9 * 4 + 6 * 4
    )


def test_a_change_of_hours_from_a_date_and_same_day_changes_in_recorded_order() -> None:
    second = MONDAY + timedelta(days=7)
    schedule = centre(
        (0, "09:00", "12:00"),
        changes=(
            ScheduleChange(
                from_date=second,
                opening_hours=(OpeningPeriod(weekday=1, opens="14:00", closes="15:00"),),
            ),
            ScheduleChange(from_date=second, boxes=3),
            ScheduleChange(from_date=second, boxes=1),
        ),
    )
    slots = list(
        slot_starts(schedule, paris(second, "00:00"), paris(second, "23:59") + timedelta(days=1))
    )

    assert {s.astimezone(PARIS).weekday() for s, _, _ in slots} == {1}
    assert len(slots) == 3
    assert {boxes for _, _, boxes in slots} == {1}


# -- ranking --------------------------------------------------------------------------

# The patient's reach (lead time, travel) taken out: these tests are about the cost and
# the windows, on places from now on; test_scheduler_reach.py puts it back.
AT_ONCE = Reach(lead_minutes=0.0, minutes_per_km=0.0)


def rank(
    centres: list[CentreSchedule],
    *,
    now: datetime,
    deadline: datetime,
    weights: Weights | None = None,
    booked: dict[str, set[tuple[datetime, int]]] | None = None,
    per_centre: int = 3,
    limit: int = 10,
) -> list[Candidate]:
    return rank_candidates(
        patient_lat=PATIENT[0],
        patient_lon=PATIENT[1],
        now=now,
        deadline=deadline,
        centres=centres,
        booked=booked or {},
        weights=weights or Weights(),
        reach=AT_ONCE,
        per_centre=per_centre,
        limit=limit,
    )


def test_a_near_centre_an_hour_later_beats_a_far_centre_now() -> None:
    near = centre((0, "10:00", "12:00"), centre_id="near", place=NEAR)
    far = centre((0, "09:00", "12:00"), centre_id="far", place=FAR)
    now = paris(MONDAY, "09:00")
    ranked = rank([far, near], now=now, deadline=paris(MONDAY, "18:00"))

    best = ranked[0]
    assert (best.centre_id, best.start, best.box) == ("near", paris(MONDAY, "10:00"), 1)
    assert best.distance_km == pytest.approx(2.0, abs=0.1)
    assert best.wait_minutes == 60
    assert best.cost == pytest.approx(best.distance_km + 6.0)
    far_best = next(c for c in ranked if c.centre_id == "far")
    assert far_best.start == now
    assert far_best.distance_km == pytest.approx(20.0, abs=0.2)
    assert far_best.cost > best.cost
    assert [c.cost for c in ranked] == sorted(c.cost for c in ranked)


def test_the_weights_decide_between_travel_and_waiting() -> None:
    near = centre((0, "10:00", "12:00"), centre_id="near", place=NEAR)
    far = centre((0, "09:00", "12:00"), centre_id="far", place=FAR)
    now = paris(MONDAY, "09:00")
    # A minute of waiting as dear as a kilometre: an hour's wait no longer pays for 18 km.
    ranked = rank(
        [near, far],
        now=now,
        deadline=paris(MONDAY, "18:00"),
        weights=Weights(travel_per_km=1.0, wait_per_minute=1.0),
    )

    assert (ranked[0].centre_id, ranked[0].start) == ("far", now)


def test_a_far_centre_now_beats_a_near_centre_tomorrow() -> None:
    near = centre((1, "09:00", "12:00"), centre_id="near", place=NEAR)
    far = centre((0, "09:00", "12:00"), centre_id="far", place=FAR)
    now = paris(MONDAY, "09:00")
    ranked = rank([near, far], now=now, deadline=now + timedelta(days=2))

    assert (ranked[0].centre_id, ranked[0].start) == ("far", now)
    near_best = next(c for c in ranked if c.centre_id == "near")
    assert near_best.wait_minutes == 24 * 60
    assert near_best.cost > ranked[0].cost


def test_several_places_per_centre_are_kept_as_fallbacks_best_first() -> None:
    near = centre((0, "09:00", "12:00"), centre_id="near", place=NEAR)
    far = centre((0, "09:00", "12:00"), centre_id="far", place=FAR)
    now = paris(MONDAY, "08:55")
    ranked = rank([far, near], now=now, deadline=paris(MONDAY, "18:00"), per_centre=3, limit=4)

    assert [(c.centre_id, c.start.astimezone(PARIS).strftime("%H:%M"), c.box) for c in ranked] == [
        ("near", "09:00", 1),
        ("near", "09:00", 2),
        ("near", "09:20", 1),
        ("far", "09:00", 1),
    ]


def test_booked_places_are_not_candidates() -> None:
    near = centre((0, "09:00", "12:00"), centre_id="near", place=NEAR)
    now = paris(MONDAY, "09:00")
    taken = {(now, 1), (now, 2)}
    ranked = rank([near], now=now, deadline=paris(MONDAY, "18:00"), booked={"near": taken})

    assert (ranked[0].start, ranked[0].box) == (paris(MONDAY, "09:20"), 1)


def test_no_slot_starts_before_now() -> None:
    near = centre((0, "09:00", "12:00"), centre_id="near", place=NEAR)
    ranked = rank([near], now=paris(MONDAY, "09:01"), deadline=paris(MONDAY, "18:00"))

    assert ranked[0].start == paris(MONDAY, "09:20")
    assert all(c.wait_minutes >= 0 for c in ranked)


def test_the_deadline_excludes_later_slots_and_may_leave_nothing() -> None:
    near = centre((0, "09:00", "12:00"), centre_id="near", place=NEAR)
    far = centre((1, "09:00", "12:00"), centre_id="far", place=FAR)
    now = paris(MONDAY, "08:00")

    # A slot starting exactly at the deadline still counts.
    ranked = rank([near, far], now=now, deadline=paris(MONDAY, "09:20"))
    assert {(c.centre_id, c.start) for c in ranked} == {
        ("near", paris(MONDAY, "09:00")),
        ("near", paris(MONDAY, "09:20")),
    }
    assert rank([near, far], now=now, deadline=paris(MONDAY, "08:59")) == []
    assert rank([near, far], now=now, deadline=now - timedelta(minutes=1)) == []
    assert rank([], now=now, deadline=now + timedelta(days=1)) == []


def test_ranking_is_deterministic_on_ties() -> None:
    twin_b = centre((0, "09:00", "12:00"), centre_id="b", place=NEAR, boxes=1)
    twin_a = centre((0, "09:00", "12:00"), centre_id="a", place=NEAR, boxes=1)
    ranked = rank([twin_b, twin_a], now=paris(MONDAY, "09:00"), deadline=paris(MONDAY, "09:00"))

    assert [c.centre_id for c in ranked] == ["a", "b"]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Weights(travel_per_km=-1.0)
    now = paris(MONDAY, "09:00")
    with pytest.raises(ValueError, match="at least 1"):
        rank([], now=now, deadline=now, per_centre=0)


# -- patients -------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    name: str
    priority: Priority
    deadline: datetime


def test_patients_are_ordered_by_priority_then_deadline() -> None:
    t = paris(MONDAY, "09:00")
    patients = [
        Waiting("routine-early", Priority.ROUTINE, t),
        Waiting("stat-late", Priority.STAT, t + timedelta(hours=3)),
        Waiting("urgent", Priority.URGENT, t + timedelta(hours=1)),
        Waiting("stat-early", Priority.STAT, t + timedelta(hours=2)),
        Waiting("asap", Priority.ASAP, t + timedelta(hours=5)),
        Waiting("routine-late", Priority.ROUTINE, t + timedelta(hours=1)),
    ]
    ordered = order_patients(patients, key=lambda p: (p.priority, p.deadline))

    assert [p.name for p in ordered] == [
        "stat-early",
        "stat-late",
        "asap",
        "urgent",
        "routine-early",
        "routine-late",
    ]
    assert order_patients([], key=lambda p: (p.priority, p.deadline)) == []
