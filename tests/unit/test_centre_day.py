"""A centre's day as its page shows it (aiguillage/console/centre_day.py): each
appointment with what may be recorded now, and when the page must read the list again
for that to change (issue 27); a door's refusal said in its own French words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiguillage.console.centre_day import LONGEST_WAIT_SECONDS, with_offers
from aiguillage.console.common import _said
from shared.events import ConsultationOutcome

NOW = datetime(2020, 3, 25, 13, 0, tzinfo=UTC)


def appointment(
    status: str, starts_in: timedelta, recorded: timedelta | None = None
) -> dict[str, Any]:
    start = NOW + starts_in
    return {
        "appointment_id": f"a-{status}-{starts_in}",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=20)).isoformat(),
        "status": status,
        "outcome_at": (NOW - recorded).isoformat() if recorded is not None else None,
    }


def test_the_page_reads_the_list_again_when_an_action_opens() -> None:
    shown, wait = with_offers([appointment("booked", timedelta(minutes=10))], NOW)
    [row] = shown
    assert row["offre"].seen is not None and row["offre"].no_show is not None
    assert wait == 10 * 60 + 1  # at the start, "vu" opens

    shown, wait = with_offers([appointment("booked", timedelta(minutes=-5))], NOW)
    assert shown[0]["offre"].seen is None
    assert wait == 15 * 60 + 1  # at the end, "absent" opens


def test_a_recorded_outcome_offers_its_correction_for_24_hours() -> None:
    shown, wait = with_offers(
        [appointment("noshow", timedelta(hours=-2), recorded=timedelta(hours=1))], NOW
    )
    offer = shown[0]["offre"]
    assert offer.correct_to is ConsultationOutcome.SEEN and offer.correction is None
    assert wait == LONGEST_WAIT_SECONDS + 1  # 23 hours away: read again within the hour
    stale, wait = with_offers(
        [appointment("fulfilled", timedelta(days=-2), recorded=timedelta(days=2))], NOW
    )
    assert stale[0]["offre"].correction.code == "correction_too_late"
    assert wait is None


def test_a_refusal_is_said_in_the_service_s_words() -> None:
    body = {
        "error_code": "outcome_before_start",
        "reasons": [{"code": "outcome_before_start", "message": "La consultation commence…"}],
    }
    assert _said(body, "raw") == "La consultation commence…"
    assert _said({"detail": "no appointment"}, "raw") == "no appointment"
    assert _said(["not", "a", "dict"], "raw") == "raw"
