"""When a centre may record what became of an appointment, and correct it (issue 27).

One rule for every door a centre uses: the scheduler's door on the broker (which
decides), the notifier's HTTP API (the centres' HTTP door: it answers at once, where
the broker's answer would come later on the centre's reply key) and the console's
centre page (which offers only what is allowed). Each judges with its own clock, never
with a time a message carries: a centre's software with a wrong clock, or a forged
time, changes nothing.

- "vu" (seen) from the slot's start: the consultation may have begun;
- "absent" (no-show) from the slot's end: until then the patient may still come;
- "annulé" (the consultation did not take place because of the centre: a doctor
  missing, a box closed) from the slot's start, as "vu": before it, the centre's
  trouble is the ARS's to decide (a suspension moves every patient);
- once recorded, "vu" or "absent" is corrected into the other (never recorded again)
  within ``CORRECTION_WINDOW`` of its first recording: a correction does not extend
  it. The outcome a correction sets is held to the same rule ("absent" from the end).
  "annulé" is never corrected, nor corrected into: its patient was booked again at once
  (or waits on the list), so "vu" or "absent" would be about an appointment that no
  longer exists; and one seen or absent has nothing to rebook.

An appointment cancelled for another reason (moved by a suspension, withdrawn) has the
same status as one the centre cancelled, "cancelled": nothing may be recorded on it
either, and the refusals say so in words true of both.

Plain functions of their arguments: no clock, no I/O. A refusal has a stable code (what
machines act on) and a French message (what the person at the centre reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import ConsultationOutcome
from shared.labels import CONSULTATION_OUTCOMES
from shared.paris import paris_fr

CORRECTION_WINDOW = timedelta(hours=24)

# The appointment's status (FHIR Appointment) each outcome sets, in the scheduler's and
# the notifier's tables.
STATUS_OF = {
    ConsultationOutcome.SEEN: "fulfilled",
    ConsultationOutcome.NO_SHOW: "noshow",
    ConsultationOutcome.CANCELLED: "cancelled",
}
OUTCOME_OF = {status: outcome for outcome, status in STATUS_OF.items()}
LABEL_FR = CONSULTATION_OUTCOMES  # "vu", "absent", "annulé"
# The outcomes a correction turns into each other.
CORRECTABLE = frozenset({ConsultationOutcome.SEEN, ConsultationOutcome.NO_SHOW})


@dataclass(frozen=True, slots=True)
class OutcomeRefused:
    """Why an outcome or a correction may not be recorded now."""

    code: str
    message: str


def recorded(status: str) -> ConsultationOutcome | None:
    """The outcome an appointment's status says was recorded, if any."""
    return OUTCOME_OF.get(status)


def correctable_until(recorded_at: datetime) -> datetime:
    return recorded_at + CORRECTION_WINDOW


def _in_time(
    outcome: ConsultationOutcome, start: datetime, end: datetime, now: datetime
) -> OutcomeRefused | None:
    if outcome is ConsultationOutcome.NO_SHOW:
        if now < end:
            return OutcomeRefused(
                "no_show_before_end",
                f"Le créneau se termine le {paris_fr(end)} : « absent » ne peut être noté "
                "qu'à partir de cette heure ; le patient peut encore venir.",
            )
        return None
    if now < start:
        return OutcomeRefused(
            "outcome_before_start",
            f"La consultation commence le {paris_fr(start)} : « {LABEL_FR[outcome]} » ne "
            "peut être noté qu'à partir de cette heure.",
        )
    return None


def _cancelled_already() -> OutcomeRefused:
    return OutcomeRefused(
        "appointment_cancelled",
        "Ce rendez-vous est annulé : le patient a reçu un autre rendez-vous ou attend sur "
        "la liste d'attente. Son issue ne peut plus être notée ni corrigée en « vu » ou "
        "« absent ».",
    )


def refuse_record(
    outcome: ConsultationOutcome,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    already: ConsultationOutcome | None = None,
) -> OutcomeRefused | None:
    """None if ``outcome`` may be recorded now for the slot [start, end); ``already``:
    the outcome recorded before, which only a correction changes."""
    if already is ConsultationOutcome.CANCELLED:
        return _cancelled_already()
    if already is not None and outcome is ConsultationOutcome.CANCELLED:
        return OutcomeRefused(
            "outcome_already_recorded",
            f"Ce rendez-vous est déjà noté « {LABEL_FR[already]} » : il ne peut plus être "
            "noté « annulé » (une correction ne fait que passer de « vu » à « absent », "
            "ou l'inverse).",
        )
    if already is not None:
        return OutcomeRefused(
            "outcome_already_recorded",
            f"Ce rendez-vous est déjà noté « {LABEL_FR[already]} » : pour changer "
            "l'issue, corrigez-la (dans les 24 heures qui suivent son enregistrement).",
        )
    return _in_time(outcome, start, end, now)


def refuse_correction(
    outcome: ConsultationOutcome,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    already: ConsultationOutcome | None,
    recorded_at: datetime | None,
) -> OutcomeRefused | None:
    """None if the recorded outcome ``already`` (first recorded at ``recorded_at``) may
    be corrected into ``outcome`` now. An outcome recorded before its time was kept
    (``recorded_at`` None) is too old to correct."""
    if already is None:
        return OutcomeRefused(
            "nothing_to_correct",
            "Aucune issue (« vu » ou « absent ») n'est notée pour ce rendez-vous : "
            "il n'y a rien à corriger.",
        )
    if already is ConsultationOutcome.CANCELLED:
        return _cancelled_already()
    if outcome not in CORRECTABLE:
        return OutcomeRefused(
            "correction_to_cancelled",
            f"Ce rendez-vous est noté « {LABEL_FR[already]} » : une correction ne fait que "
            "passer de « vu » à « absent », ou l'inverse ; elle ne l'annule pas.",
        )
    if recorded_at is None or now >= correctable_until(recorded_at):
        since = f" le {paris_fr(recorded_at)}" if recorded_at is not None else ""
        return OutcomeRefused(
            "correction_too_late",
            f"L'issue « {LABEL_FR[already]} » a été notée{since} : elle ne peut être "
            "corrigée que dans les 24 heures qui suivent.",
        )
    if outcome is already:
        return OutcomeRefused(
            "correction_unchanged",
            f"Ce rendez-vous est déjà noté « {LABEL_FR[already]} » : la correction ne change rien.",
        )
    return _in_time(outcome, start, end, now)


@dataclass(frozen=True, slots=True)
class Offer:
    """What a centre's page offers for one appointment at ``now``: each action with
    the refusal it would meet (None: allowed)."""

    seen: OutcomeRefused | None
    no_show: OutcomeRefused | None
    # "annulé": from the slot's start, as "vu".
    cancel: OutcomeRefused | None
    # The correction into the other outcome, when one is recorded (None otherwise).
    correct_to: ConsultationOutcome | None
    correction: OutcomeRefused | None
    correctable_until: datetime | None

    @property
    def awaiting(self) -> bool:
        """No outcome recorded yet: the page shows "vu" / "absent" / "annulé"."""
        return self.correct_to is None


def offer(
    status: str, *, start: datetime, end: datetime, now: datetime, recorded_at: datetime | None
) -> Offer:
    already = recorded(status)
    seen = refuse_record(ConsultationOutcome.SEEN, start=start, end=end, now=now, already=already)
    no_show = refuse_record(
        ConsultationOutcome.NO_SHOW, start=start, end=end, now=now, already=already
    )
    cancel = refuse_record(
        ConsultationOutcome.CANCELLED, start=start, end=end, now=now, already=already
    )
    if already is None or already not in CORRECTABLE:
        return Offer(
            seen, no_show, cancel, correct_to=None, correction=None, correctable_until=None
        )
    other = (
        ConsultationOutcome.NO_SHOW
        if already is ConsultationOutcome.SEEN
        else ConsultationOutcome.SEEN
    )
    return Offer(
        seen,
        no_show,
        cancel,
        correct_to=other,
        correction=refuse_correction(
            other, start=start, end=end, now=now, already=already, recorded_at=recorded_at
        ),
        correctable_until=correctable_until(recorded_at) if recorded_at is not None else None,
    )
