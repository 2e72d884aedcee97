"""What a centre reports after (or instead of) a consultation."""

from __future__ import annotations

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


class PatientEscalated(_CentreReport):
    """A centre hands a deteriorating patient back to Centre 15."""

    event_type: ClassVar[str] = "patient.escalated"

    referral_id: RecordId
    centre_id: RoutingWord
    appointment_id: RecordId | None = None
    reason: str = Field(max_length=500)
