"""Who publishes what: the producer side of the topology, for documentation
(the AsyncAPI document) and for broker permissions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import create_model

from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    CapacityAlert,
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
    ConsultationCompleted,
    ConsultationNoShow,
    Envelope,
    EventPayload,
    NotificationFailed,
    NotificationSent,
    PatientContact,
    PatientEscalated,
    ProtocolPublished,
    ReferralCancelled,
    ReferralOutcome,
    ReferralReceived,
    ReferralRegulated,
    ReferralRejected,
    ReferralSubmitted,
    ReferralWaitlisted,
    RegulationDecided,
    ReinforcementRequested,
    SlotAssigned,
    SubmissionAcknowledged,
    SubmissionError,
)

PUBLISHERS: dict[str, tuple[type[EventPayload], ...]] = {
    "referrers": (ReferralSubmitted, ReferralCancelled),
    "ars": (
        CentreActivated,
        CentreCapacityChanged,
        CentreSuspended,
        CentreClosed,
    ),
    "centre_15": (RegulationDecided, ProtocolPublished),
    "centres": (
        ConsultationCompleted,
        ConsultationNoShow,
        PatientEscalated,
        ReinforcementRequested,
    ),
    "intake": (
        ReferralReceived,
        ReferralRejected,
        PatientContact,
        SubmissionAcknowledged,
        SubmissionError,
    ),
    "regulation": (ReferralRegulated,),
    "scheduler": (
        SlotAssigned,
        AppointmentRescheduled,
        AppointmentCancelled,
        ReferralWaitlisted,
        CapacityAlert,
    ),
    "notifier": (NotificationSent, NotificationFailed, ReferralOutcome),
}

_PER_CENTRE = {SlotAssigned, AppointmentRescheduled, AppointmentCancelled}


def routing_key_pattern(cls: type[EventPayload]) -> str:
    if cls in _PER_CENTRE:
        return f"{cls.event_type}.{{centre_id}}"
    if cls is CapacityAlert:
        return f"{cls.event_type}.{{departement}}"
    if cls in (SubmissionAcknowledged, SubmissionError, ReferralOutcome):
        return f"reply.{{reply_to}}.{cls.event_type}"
    if cls is PatientContact:
        return "contact.notifier"
    return cls.event_type


def typed_envelope(cls: type[EventPayload]) -> type[Envelope]:
    """The envelope with ``data`` typed as this event's payload (for documentation)."""
    name = "".join(part.title() for part in cls.event_type.replace(".", "_").split("_"))
    fields: dict[str, Any] = {
        "type": (Literal[cls.event_type], cls.event_type),
        "version": (Literal[cls.version], cls.version),
        "data": (cls, ...),
    }
    model: type[Envelope] = create_model(
        f"{name}V{cls.version}", __base__=Envelope, __doc__=cls.__doc__, **fields
    )
    return model
