"""Issue 27: the reasons a referrer withdraws a referral for, on the events and in the
status it reads. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.intake.domain.status import Entry, Happening, State, entry_for_event, message, replay
from shared.events import AppointmentCancelled, CancelledBy, ReferralCancelled, WithdrawalReason
from shared.labels import WITHDRAWAL_REASONS as WITHDRAWAL_REASONS_FR

T0 = datetime(2020, 3, 25, 8, 0, tzinfo=UTC)


def test_every_reason_has_its_own_french_label() -> None:
    assert set(WITHDRAWAL_REASONS_FR) == set(WithdrawalReason)
    labels = list(WITHDRAWAL_REASONS_FR.values())
    assert len(set(labels)) == len(labels) and all(labels)
    assert {r.value for r in WithdrawalReason} == {
        "patient_recovered",
        "seen_elsewhere",
        "hospitalised",
        "referral_error",
        "patient_declined",
        "other",
    }


def test_the_code_is_optional_on_both_events() -> None:
    """Events staged before the field, and the broker door's free-text ones, parse."""
    old = ReferralCancelled.model_validate(
        {"referral_id": "r-1", "cancelled_by": "referrer", "reason": "plus nécessaire"}
    )
    assert old.reason_code is None
    coded = ReferralCancelled(
        referral_id="r-1",
        cancelled_by=CancelledBy.REFERRER,
        reason=WITHDRAWAL_REASONS_FR[WithdrawalReason.HOSPITALISED],
        reason_code=WithdrawalReason.HOSPITALISED,
    )
    assert coded.model_dump(mode="json")["reason_code"] == "hospitalised"
    cancelled = AppointmentCancelled.model_validate(
        {
            "centre_id": "c",
            "appointment_id": "a",
            "referral_id": "r-1",
            "patient_ref": "p",
            "start": T0.isoformat(),
            "cancelled_by": "centre",
            "reason": "box fermé",
        }
    )
    assert cancelled.reason_code is None


def test_the_status_of_a_withdrawal_says_who_and_why() -> None:
    payload = ReferralCancelled(
        referral_id="r-1",
        cancelled_by=CancelledBy.REFERRER,
        reason=WITHDRAWAL_REASONS_FR[WithdrawalReason.PATIENT_RECOVERED],
        reason_code=WithdrawalReason.PATIENT_RECOVERED,
    )
    found = entry_for_event(payload.event_type, payload.model_dump(mode="json"))
    assert found is not None
    happening, detail = found
    assert happening is Happening.WITHDRAWN
    assert detail == {
        "by": "referrer",
        "reason": "le patient va mieux",
        "reason_code": "patient_recovered",
    }
    received = Entry(Happening.RECEIVED, {}, T0, "e-0")
    current = replay([received, Entry(happening, detail, T0 + timedelta(minutes=1), "e-1")])
    assert current is not None and current.state is State.WITHDRAWN
    assert current.status == "cancelled"
    assert message(current.status, current.detail) == (
        "Demande annulée par le médecin adresseur. Motif : le patient va mieux."
    )
    # Without a code (the broker door's free text), the detail is as it always was.
    free = ReferralCancelled(referral_id="r-1", cancelled_by=CancelledBy.PATIENT, reason="x")
    assert entry_for_event(free.event_type, free.model_dump(mode="json")) == (
        Happening.WITHDRAWN,
        {"by": "patient", "reason": "x"},
    )
