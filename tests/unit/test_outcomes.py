"""When a centre may record an outcome, and correct it (shared/outcomes.py): "vu" from
the slot's start, "absent" from its end, a correction within 24 hours of the first
recording; each refusal with a stable code and a French reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.events import CentreCancelReason, ConsultationOutcome
from shared.labels import CENTRE_CANCEL_REASONS, label
from shared.outcomes import (
    CORRECTION_WINDOW,
    OutcomeRefused,
    offer,
    recorded,
    refuse_correction,
    refuse_record,
)

SEEN, NO_SHOW = ConsultationOutcome.SEEN, ConsultationOutcome.NO_SHOW
CANCELLED = ConsultationOutcome.CANCELLED
# 14h20–14h40 in Paris (UTC+1 in March 2020, before the change to summer time).
START = datetime(2020, 3, 25, 13, 20, tzinfo=UTC)
END = START + timedelta(minutes=20)
SECOND = timedelta(seconds=1)


def record(
    outcome: ConsultationOutcome, now: datetime, already: ConsultationOutcome | None = None
) -> OutcomeRefused | None:
    return refuse_record(outcome, start=START, end=END, now=now, already=already)


def correct(
    outcome: ConsultationOutcome,
    now: datetime,
    already: ConsultationOutcome | None,
    recorded_at: datetime | None,
) -> OutcomeRefused | None:
    return refuse_correction(
        outcome, start=START, end=END, now=now, already=already, recorded_at=recorded_at
    )


def test_seen_from_the_start() -> None:
    early = record(SEEN, START - SECOND)
    assert early is not None and early.code == "outcome_before_start"
    assert early.message == (
        "La consultation commence le 25/03/2020 à 14h20 (heure de Paris) : « vu » ne peut "
        "être noté qu'à partir de cette heure."
    )
    assert record(SEEN, START) is None
    assert record(SEEN, END + timedelta(days=3)) is None


def test_absent_from_the_end() -> None:
    for now in (START - SECOND, START, END - SECOND):
        refused = record(NO_SHOW, now)
        assert refused is not None and refused.code == "no_show_before_end", now
        assert "14h40 (heure de Paris)" in refused.message
        assert "le patient peut encore venir" in refused.message
    assert record(NO_SHOW, END) is None


def test_an_outcome_is_recorded_once() -> None:
    refused = record(SEEN, END, already=NO_SHOW)
    assert refused is not None and refused.code == "outcome_already_recorded"
    assert "déjà noté « absent »" in refused.message and "corrigez-la" in refused.message


def test_a_correction_within_24_hours_of_the_recording() -> None:
    at = END + timedelta(minutes=5)
    assert correct(SEEN, at + timedelta(hours=23, minutes=59), NO_SHOW, at) is None
    assert correct(NO_SHOW, at + timedelta(hours=1), SEEN, at) is None
    late = correct(SEEN, at + CORRECTION_WINDOW, NO_SHOW, at)
    assert late is not None and late.code == "correction_too_late"
    assert late.message == (
        "L'issue « absent » a été notée le 25/03/2020 à 14h45 (heure de Paris) : elle ne "
        "peut être corrigée que dans les 24 heures qui suivent."
    )


def test_what_a_correction_may_not_do() -> None:
    nothing = correct(SEEN, END, None, None)
    assert nothing is not None and nothing.code == "nothing_to_correct"
    same = correct(SEEN, END, SEEN, END)
    assert same is not None and same.code == "correction_unchanged"
    # Recorded before its time was kept (an older release): too old to tell, refused.
    unknown = correct(NO_SHOW, END, SEEN, None)
    assert unknown is not None and unknown.code == "correction_too_late"
    # "vu" noted at the start, corrected into "absent" before the end: still too early.
    early = correct(NO_SHOW, START + timedelta(minutes=5), SEEN, START)
    assert early is not None and early.code == "no_show_before_end"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("booked", None),
        ("fulfilled", SEEN),
        ("noshow", NO_SHOW),
        ("cancelled", CANCELLED),
        ("escalated", None),
    ],
)
def test_the_outcome_a_status_says(status: str, expected: ConsultationOutcome | None) -> None:
    assert recorded(status) is expected


def test_what_the_centre_s_page_offers() -> None:
    before = offer("booked", start=START, end=END, now=START - SECOND, recorded_at=None)
    assert before.awaiting and before.seen is not None and before.no_show is not None
    during = offer("booked", start=START, end=END, now=START, recorded_at=None)
    assert during.seen is None and during.no_show is not None
    after = offer("booked", start=START, end=END, now=END, recorded_at=None)
    assert after.seen is None and after.no_show is None and after.correct_to is None

    seen = offer("fulfilled", start=START, end=END, now=END, recorded_at=START)
    assert not seen.awaiting and seen.correct_to is NO_SHOW and seen.correction is None
    assert seen.correctable_until == START + CORRECTION_WINDOW
    assert seen.seen is not None and seen.seen.code == "outcome_already_recorded"
    stale = offer("noshow", start=START, end=END, now=END + timedelta(days=2), recorded_at=END)
    assert stale.correct_to is SEEN
    assert stale.correction is not None and stale.correction.code == "correction_too_late"


# -- "annulé": the centre could not hold the consultation ------------------------------


def test_cancelled_from_the_start() -> None:
    early = record(CANCELLED, START - SECOND)
    assert early is not None and early.code == "outcome_before_start"
    assert early.message == (
        "La consultation commence le 25/03/2020 à 14h20 (heure de Paris) : « annulé » ne "
        "peut être noté qu'à partir de cette heure."
    )
    # Not held to the end as "absent" is: a doctor missing is known at the start.
    assert record(CANCELLED, START) is None
    assert record(CANCELLED, END - SECOND) is None
    assert record(CANCELLED, END + timedelta(hours=2)) is None


def test_a_cancelled_consultation_is_final() -> None:
    # Its patient has another appointment (or waits): nothing more is noted on it.
    for outcome in (SEEN, NO_SHOW, CANCELLED):
        refused = record(outcome, END, already=CANCELLED)
        assert refused is not None and refused.code == "appointment_cancelled", outcome
        assert "le patient a reçu un autre rendez-vous" in refused.message
    for outcome in (SEEN, NO_SHOW):
        refused = correct(outcome, END + timedelta(minutes=1), CANCELLED, END)
        assert refused is not None and refused.code == "appointment_cancelled", outcome
        assert "ni corrigée en « vu » ou « absent »" in refused.message


def test_seen_or_absent_is_never_turned_into_cancelled() -> None:
    for already in (SEEN, NO_SHOW):
        noted = record(CANCELLED, END, already=already)
        assert noted is not None and noted.code == "outcome_already_recorded"
        assert f"déjà noté « {'vu' if already is SEEN else 'absent'} »" in noted.message
        corrected = correct(CANCELLED, END + timedelta(minutes=1), already, END)
        assert corrected is not None and corrected.code == "correction_to_cancelled"
        assert "elle ne l'annule pas" in corrected.message


def test_the_page_offers_cancelled_from_the_start() -> None:
    before = offer("booked", start=START, end=END, now=START - SECOND, recorded_at=None)
    assert before.cancel is not None and before.cancel.code == "outcome_before_start"
    during = offer("booked", start=START, end=END, now=START, recorded_at=None)
    assert during.cancel is None and during.no_show is not None
    seen = offer("fulfilled", start=START, end=END, now=END, recorded_at=START)
    assert seen.cancel is not None and seen.correct_to is NO_SHOW
    # Cancelled (by the centre, or moved away): nothing to record, nothing to correct.
    gone = offer("cancelled", start=START, end=END, now=END, recorded_at=START)
    assert gone.correct_to is None and gone.correction is None
    assert all(
        r is not None and r.code == "appointment_cancelled"
        for r in (gone.seen, gone.no_show, gone.cancel)
    )


def test_the_words_of_cancelled() -> None:
    assert label(CANCELLED) == "annulé"
    assert label(CentreCancelReason.DOCTOR_ABSENT) == "médecin absent"
    assert {label(code) for code in CentreCancelReason} == set(CENTRE_CANCEL_REASONS.values())
