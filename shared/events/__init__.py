"""The event contracts: one envelope, and a versioned payload model per event type."""

from shared.events.appointment import AppointmentCancelled, AppointmentRescheduled, SlotAssigned
from shared.events.ars import AlertKind, CapacityAlert, ReinforcementRequested
from shared.events.base import Envelope, EventPayload, new_id, utcnow
from shared.events.centre import (
    CentreActivated,
    CentreCapacityChanged,
    CentreClosed,
    CentreSuspended,
)
from shared.events.consultation import ConsultationCompleted, ConsultationNoShow, PatientEscalated
from shared.events.notification import Channel, NotificationFailed, NotificationSent, RecipientKind
from shared.events.referral import (
    PatientContact,
    PatientIdentity,
    ReferralCancelled,
    ReferralOutcome,
    ReferralReceived,
    ReferralRegulated,
    ReferralRejected,
    ReferralSubmitted,
    ReferralWaitlisted,
    Referrer,
)
from shared.events.registry import CATALOGUE, UnknownEventError, payload_class
from shared.events.regulation import ProtocolPublished, RegulationDecided
from shared.events.submission import SubmissionAcknowledged, SubmissionError
from shared.events.vocabulary import (
    CancelledBy,
    CentreKind,
    Clinical,
    Decision,
    OpeningPeriod,
    Priority,
    Purpose,
    Reason,
    ReferrerKind,
    ReferrerRef,
    RiskFactor,
    SeveritySign,
    Sex,
    Vitals,
)

__all__ = [
    "CATALOGUE",
    "AlertKind",
    "AppointmentCancelled",
    "AppointmentRescheduled",
    "CancelledBy",
    "CapacityAlert",
    "CentreActivated",
    "CentreCapacityChanged",
    "CentreClosed",
    "CentreKind",
    "CentreSuspended",
    "Channel",
    "Clinical",
    "ConsultationCompleted",
    "ConsultationNoShow",
    "Decision",
    "Envelope",
    "EventPayload",
    "NotificationFailed",
    "NotificationSent",
    "OpeningPeriod",
    "PatientContact",
    "PatientEscalated",
    "PatientIdentity",
    "Priority",
    "ProtocolPublished",
    "Purpose",
    "Reason",
    "RecipientKind",
    "ReferralCancelled",
    "ReferralOutcome",
    "ReferralReceived",
    "ReferralRegulated",
    "ReferralRejected",
    "ReferralSubmitted",
    "ReferralWaitlisted",
    "Referrer",
    "ReferrerKind",
    "ReferrerRef",
    "RegulationDecided",
    "ReinforcementRequested",
    "RiskFactor",
    "SeveritySign",
    "Sex",
    "SlotAssigned",
    "SubmissionAcknowledged",
    "SubmissionError",
    "UnknownEventError",
    "Vitals",
    "new_id",
    "payload_class",
    "utcnow",
]
