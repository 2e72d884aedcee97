"""What a centre reports after (or instead of) a consultation."""

from __future__ import annotations

from typing import ClassVar

from shared.events.base import EventPayload


class ConsultationCompleted(EventPayload):
    """The centre saw the patient (FHIR Appointment status: fulfilled)."""

    event_type: ClassVar[str] = "consultation.completed"

    appointment_id: str
    referral_id: str
    centre_id: str
    test_prescribed: bool = False
    note: str = ""


class ConsultationNoShow(EventPayload):
    """The patient did not come (FHIR Appointment status: noshow)."""

    event_type: ClassVar[str] = "consultation.no_show"

    appointment_id: str
    referral_id: str
    centre_id: str


class PatientEscalated(EventPayload):
    """A centre hands a deteriorating patient back to Centre 15."""

    event_type: ClassVar[str] = "patient.escalated"

    referral_id: str
    centre_id: str
    appointment_id: str | None = None
    reason: str
