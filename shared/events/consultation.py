"""What a centre reports after (or instead of) a consultation."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import RecordId, RoutingWord


class _CentreReport(EventPayload):
    """Sent by a centre about its own patients: the routing key ends with the centre's
    id, so that the broker lets a centre publish for itself only."""

    centre_id: RoutingWord

    def routing_key(self) -> str:
        return f"{self.event_type}.{self.centre_id}"


class ConsultationCompleted(_CentreReport):
    """The centre saw the patient (FHIR Appointment status: fulfilled)."""

    event_type: ClassVar[str] = "consultation.completed"

    appointment_id: RecordId
    referral_id: RecordId
    centre_id: RoutingWord
    test_prescribed: bool = False
    note: str = Field("", max_length=500)


class ConsultationNoShow(_CentreReport):
    """The patient did not come (FHIR Appointment status: noshow)."""

    event_type: ClassVar[str] = "consultation.no_show"

    appointment_id: RecordId
    referral_id: RecordId
    centre_id: RoutingWord


class ConsultationOutcome(StrEnum):
    """What a centre records of a consultation; "seen" and "no_show" may be corrected
    into each other, "cancelled" never (its patient is booked again at once)."""

    SEEN = "seen"  # consultation.completed
    NO_SHOW = "no_show"  # consultation.no_show
    CANCELLED = "cancelled"  # consultation.cancelled


class CentreCancelReason(StrEnum):
    """Why a centre could not hold a consultation: stable codes, a short list its page
    offers (French words in shared/labels.py)."""

    DOCTOR_ABSENT = "doctor_absent"
    BOX_CLOSED = "box_closed"
    EQUIPMENT_FAILURE = "equipment_failure"
    OTHER = "other"


class ConsultationCancelled(_CentreReport):
    """The consultation did not take place because of the centre (a doctor missing, a
    box closed), recorded from the slot's start (``shared/outcomes.py``). The scheduler
    books the patient again at once, at the best slot within their reach, or puts them
    on the waiting list; it is never corrected into "seen" or "no_show"."""

    event_type: ClassVar[str] = "consultation.cancelled"

    appointment_id: RecordId
    referral_id: RecordId
    centre_id: RoutingWord
    reason_code: CentreCancelReason | None = Field(
        None, description="Why, from the short list the centre's page offers."
    )


class ConsultationCorrected(_CentreReport):
    """A centre corrects the outcome it recorded for its own appointment ("vu" into
    "absent" or back), within 24 hours of recording it (``shared/outcomes.py``). The
    scheduler's door checks it with its own clock, records who corrected what, and puts
    it on the bus with ``previous_outcome`` from its own record."""

    event_type: ClassVar[str] = "consultation.corrected"

    appointment_id: RecordId
    referral_id: RecordId
    centre_id: RoutingWord
    outcome: ConsultationOutcome = Field(description="The outcome that stands from now on.")
    previous_outcome: ConsultationOutcome | None = Field(
        None,
        description="The outcome it replaces: set by the scheduler's door from its own "
        "record (what a centre says here is not believed).",
    )
    test_prescribed: bool = Field(False, description="As in consultation.completed.")
    reason: str = Field("", max_length=500, description="Why, in the centre's words.")


class PatientEscalated(_CentreReport):
    """A centre hands a deteriorating patient back to Centre 15."""

    event_type: ClassVar[str] = "patient.escalated"

    referral_id: RecordId
    centre_id: RoutingWord
    appointment_id: RecordId | None = None
    reason: str = Field(max_length=500)
    departement: str | None = Field(
        None,
        max_length=3,
        description="The patient's département, whose SAMUs the notifier tells: set by "
        "the scheduler's door from its own record of the referral (what a centre says "
        "here is not believed).",
    )
