"""Every event of the catalogue, found by (type, version)."""

from __future__ import annotations

from shared.events.appointment import AppointmentCancelled, AppointmentRescheduled, SlotAssigned
from shared.events.ars import (
    CapacityAlert,
    ReinforcementAcknowledged,
    ReinforcementDeclined,
    ReinforcementGranted,
    ReinforcementRaisedAgain,
    ReinforcementRequested,
)
from shared.events.base import EventPayload
from shared.events.centre import (
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
)
from shared.events.consultation import (
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    PatientEscalated,
)
from shared.events.forecast import CapacityForecast
from shared.events.notification import NotificationFailed, NotificationSent
from shared.events.referral import (
    PatientContact,
    PatientRelocated,
    ReferralCancelled,
    ReferralOutcome,
    ReferralReceived,
    ReferralRegulated,
    ReferralRejected,
    ReferralRestricted,
    ReferralSubmitted,
    ReferralUpdated,
    ReferralWaitlisted,
)
from shared.events.regulation import ProtocolPublished, RegulationDecided
from shared.events.submission import RequestRefused, SubmissionAcknowledged, SubmissionError

CATALOGUE: tuple[type[EventPayload], ...] = (
    ReferralSubmitted,
    ReferralReceived,
    ReferralRejected,
    ReferralRegulated,
    ReferralWaitlisted,
    ReferralCancelled,
    ReferralUpdated,
    PatientRelocated,
    ReferralRestricted,
    ReferralOutcome,
    PatientContact,
    SubmissionAcknowledged,
    SubmissionError,
    RequestRefused,
    RegulationDecided,
    ProtocolPublished,
    SlotAssigned,
    AppointmentRescheduled,
    AppointmentCancelled,
    CentreActivated,
    CentreCapacityChanged,
    CentreSuspended,
    CentreClosed,
    ConsultationCompleted,
    ConsultationNoShow,
    ConsultationCancelled,
    ConsultationCorrected,
    PatientEscalated,
    CapacityAlert,
    CapacityForecast,
    ReinforcementRequested,
    ReinforcementAcknowledged,
    ReinforcementGranted,
    ReinforcementDeclined,
    ReinforcementRaisedAgain,
    NotificationSent,
    NotificationFailed,
)

_BY_KEY: dict[tuple[str, int], type[EventPayload]] = {
    (cls.event_type, cls.version): cls for cls in CATALOGUE
}


class UnknownEventError(ValueError):
    pass


def payload_class(event_type: str, version: int) -> type[EventPayload]:
    try:
        return _BY_KEY[(event_type, version)]
    except KeyError:
        raise UnknownEventError(f"unknown event {event_type} v{version}") from None


def newest_class(event_type: str) -> type[EventPayload]:
    """The newest version the catalogue has of ``event_type`` (raises when none)."""
    versions = [cls for (known, _), cls in _BY_KEY.items() if known == event_type]
    if not versions:
        raise UnknownEventError(f"unknown event {event_type}")
    return max(versions, key=lambda cls: cls.version)
