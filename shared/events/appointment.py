"""Appointments (FHIR Appointment vocabulary), routed per centre: ``<type>.<centre_id>``
lets a centre's queue bind its own patients alone."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from shared.events.base import EventPayload
from shared.events.vocabulary import (
    CancelledBy,
    PatientRef,
    Priority,
    RecordId,
    RoutingWord,
    WithdrawalReason,
)


class _PerCentre(EventPayload):
    centre_id: RoutingWord

    def routing_key(self) -> str:
        return f"{self.event_type}.{self.centre_id}"


class SlotAssigned(_PerCentre):
    """A patient booked at a centre (FHIR Appointment status: booked)."""

    event_type: ClassVar[str] = "slot.assigned"

    appointment_id: RecordId
    referral_id: RecordId
    patient_ref: PatientRef
    centre_name: str
    centre_commune_insee: str
    centre_address: str | None = None
    start: datetime
    end: datetime
    box: int
    priority: Priority
    distance_km: float
    status: str = "booked"
    test_eligible: bool = Field(
        False,
        description="Regulation found the patient eligible for a diagnostic test: the "
        "centre prescribes one (False in events from before it was carried).",
    )


class AppointmentRescheduled(_PerCentre):
    """Moved to ``centre_id`` (possibly another centre than before)."""

    event_type: ClassVar[str] = "appointment.rescheduled"

    appointment_id: RecordId
    referral_id: RecordId
    patient_ref: PatientRef
    previous_centre_id: RoutingWord
    previous_start: datetime
    previous_appointment_id: RecordId | None = None
    centre_name: str
    centre_commune_insee: str
    centre_address: str | None = None
    start: datetime
    end: datetime
    box: int
    priority: Priority
    distance_km: float
    reason: str
    test_eligible: bool = Field(
        False, description="As in slot.assigned: the centre prescribes a diagnostic test."
    )
    moved_by: CancelledBy | None = Field(
        None,
        description="Who moved it: the service (its centre suspended or closed), the "
        "patient (from their link), a regulator (a raised priority); the patient's notice "
        "says why (None in events from before it was carried).",
    )


class AppointmentCancelled(_PerCentre):
    """An appointment cancelled, with who cancelled it and why; the slot is free again."""

    event_type: ClassVar[str] = "appointment.cancelled"

    appointment_id: RecordId
    referral_id: RecordId
    patient_ref: PatientRef
    start: datetime
    cancelled_by: CancelledBy
    reason: str
    reason_code: WithdrawalReason | None = Field(
        None,
        description="A withdrawal's reason as a stable code (referral.cancelled's), for "
        "the notices to say why.",
    )
    replaced_by: RecordId | None = Field(
        None, description="The appointment that replaces it elsewhere, when it was moved."
    )
