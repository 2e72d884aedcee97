"""Who publishes what: the producer side of the topology, for documentation
(the AsyncAPI document), for broker permissions, and for the doors' checks.

Outside actors publish on the ingress exchange only; the services on the events
exchange only (and, where a service's HTTP API is an actor's door, on the ingress in
that actor's name: ``HTTP_DOORS``). A door that accepts an actor's message applies it
and publishes on the bus what follows, so the same event type may be sent by an actor
on the ingress and by the door's service on the bus (``centre.activated``, say).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import create_model

from shared.events import (
    AppointmentCancelled,
    AppointmentRescheduled,
    CapacityAlert,
    CapacityForecast,
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    Envelope,
    EventPayload,
    NotificationFailed,
    NotificationSent,
    PatientContact,
    PatientEscalated,
    PatientRelocated,
    ProtocolPublished,
    ReferralCancelled,
    ReferralOutcome,
    ReferralReceived,
    ReferralRegulated,
    ReferralRejected,
    ReferralRestricted,
    ReferralSubmitted,
    ReferralUpdated,
    ReferralWaitlisted,
    RegulationDecided,
    ReinforcementAcknowledged,
    ReinforcementDeclined,
    ReinforcementGranted,
    ReinforcementRaisedAgain,
    ReinforcementRequested,
    RequestRefused,
    SlotAssigned,
    SubmissionAcknowledged,
    SubmissionError,
)

_ARS = (
    CentreActivated,
    CentreCapacityChanged,
    CentreSuspended,
    CentreClosed,
    # Its answers to its region's centres' requests for reinforcement (issue 30).
    ReinforcementAcknowledged,
    ReinforcementGranted,
    ReinforcementDeclined,
)
_ANSWERS = (ReinforcementAcknowledged, ReinforcementGranted, ReinforcementDeclined)
_CENTRES = (
    ConsultationCompleted,
    ConsultationNoShow,
    ConsultationCancelled,
    ConsultationCorrected,
    PatientEscalated,
    ReinforcementRequested,
)

PUBLISHERS: dict[str, tuple[type[EventPayload], ...]] = {
    # Outside actors, on the ingress exchange.
    "referrers": (ReferralSubmitted, ReferralCancelled, ReferralUpdated),
    "ars": _ARS,
    "centre_15": (RegulationDecided, ProtocolPublished),
    "centres": _CENTRES,
    # The services, on the events exchange.
    "intake": (
        ReferralReceived,
        ReferralRejected,
        ReferralCancelled,
        PatientContact,
        # A referral's patient in another commune (from referral.updated), pseudonymous.
        PatientRelocated,
        # A patient's restriction of processing (GDPR article 18), pseudonymous.
        ReferralRestricted,
        SubmissionAcknowledged,
        SubmissionError,
        RequestRefused,
    ),
    "regulation": (ReferralRegulated, RequestRefused),
    "scheduler": (
        SlotAssigned,
        AppointmentRescheduled,
        AppointmentCancelled,
        ReferralWaitlisted,
        CapacityAlert,
        CapacityForecast,
        ReinforcementRaisedAgain,
        *_ARS,
        *_CENTRES,
        RequestRefused,
    ),
    "notifier": (NotificationSent, NotificationFailed, ReferralOutcome),
}

# Who publishes on the ingress: the outside actors (producers of PUBLISHERS).
OUTSIDE_PRODUCERS: tuple[str, ...] = ("referrers", "ars", "centre_15", "centres")

# What an outside actor may send, by kind of actor (Centre 15 also refers patients).
ACTOR_PRODUCERS: dict[str, tuple[str, ...]] = {
    "centre_15": ("centre_15", "referrers"),
    "referrer": ("referrers",),
    "ars": ("ars",),
    "centre": ("centres",),
}

# A service's HTTP API that is an actor's door publishes on the ingress in its name.
HTTP_DOORS: dict[str, tuple[str, ...]] = {"notifier": ("centre",), "scheduler": ("ars",)}

INGRESS_TYPES: frozenset[str] = frozenset(
    cls.event_type for producer in OUTSIDE_PRODUCERS for cls in PUBLISHERS[producer]
)


def actor_may_send(actor_kind: str) -> frozenset[str]:
    """The event types an actor of this kind may send on the ingress."""
    return frozenset(
        cls.event_type
        for producer in ACTOR_PRODUCERS.get(actor_kind, ())
        for cls in PUBLISHERS[producer]
    )


_PER_CENTRE = {
    SlotAssigned,
    AppointmentRescheduled,
    AppointmentCancelled,
    *_CENTRES,
    *_ANSWERS,
}


def routing_key_pattern(cls: type[EventPayload]) -> str:
    if cls in _PER_CENTRE:
        return f"{cls.event_type}.{{centre_id}}"
    if cls in (CapacityAlert, CapacityForecast, ReinforcementRaisedAgain):
        return f"{cls.event_type}.{{departement}}"
    if cls in (SubmissionAcknowledged, SubmissionError, ReferralOutcome, RequestRefused):
        return f"reply.{{reply_to}}.{cls.event_type}"
    if cls is PatientContact:
        return "contact.notifier"
    if cls is ReferralRegulated:
        return f"{cls.event_type}.{{decision}}"
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
