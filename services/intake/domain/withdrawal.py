"""When a referral may still be withdrawn, and the cancellation a withdrawal is.

A referrer withdraws its own referral over HTTP with a reason from a short list
(``WithdrawalReason``, issue 27); a patient cancels their appointment with the link of
its notice. Both become the ``referral.cancelled`` of the broker door. Plain functions:
no broker, no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from services.intake.domain.status import FINAL, Current, State
from shared.events import CancelledBy, ReferralCancelled, WithdrawalReason
from shared.labels import WITHDRAWAL_REASONS as WITHDRAWAL_REASONS_FR

PATIENT_REASON = "annulé par le patient (lien de l'avis de rendez-vous)"


class Standing(StrEnum):
    """Where a referral stands for a withdrawal."""

    OPEN = "open"  # to withdraw
    WITHDRAWN = "withdrawn"  # already: nothing more to do, nothing emitted twice
    FINAL = "final"  # at its end (seen, no-show): it cannot be withdrawn


def standing(current: Current | None) -> Standing:
    if current is not None and current.state is State.WITHDRAWN:
        return Standing.WITHDRAWN
    if current is not None and current.state in FINAL:
        return Standing.FINAL
    return Standing.OPEN


def by_referrer(referral_id: str, reason: WithdrawalReason) -> ReferralCancelled:
    """A referrer's withdrawal: the reason's code, and its French label for people."""
    return ReferralCancelled(
        referral_id=referral_id,
        cancelled_by=CancelledBy.REFERRER,
        reason=WITHDRAWAL_REASONS_FR[reason],
        reason_code=reason,
    )


def appointment_is_current(status: str, detail: Mapping[str, Any], appointment_id: str) -> bool:
    """Whether the appointment a patient's link names is still the referral's: not
    moved (a new link went with the new appointment), cancelled, seen..."""
    return status == State.APPOINTMENT.value and detail.get("appointment_id") == appointment_id


def by_patient(referral_id: str) -> ReferralCancelled:
    return ReferralCancelled(
        referral_id=referral_id, cancelled_by=CancelledBy.PATIENT, reason=PATIENT_REASON
    )
