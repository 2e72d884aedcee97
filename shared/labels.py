"""The French words a person reads for each code, in one place.

Codes travel (in events, APIs, tables) and machines act on them; the words are said
where a message is written: a notice, a status, the console, a regulator's reason. One
code, one label, here, so that a priority is "dès que possible" on the centre's notice,
the referrer's page and Centre 15's page alike. ``label(member)`` gives the label of
any code of ``shared.events`` (a test fails for a code without one); the codes that are
a service's own strings (a referral's status, an appointment's, a centre's) have their
accessor.

The regulation protocol words its reasons itself (``services/regulation/protocols``):
a version may reword them without a release, so it keeps its own copy of the signs',
risk factors' and priorities' words, which a test holds equal to these for the shipped
version.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from shared.events import (
    AlertKind,
    CancelledBy,
    CentreCancelReason,
    CentreKind,
    Channel,
    ConsultationOutcome,
    Decision,
    Priority,
    Purpose,
    RecipientKind,
    ReferrerKind,
    ReinforcementState,
    RiskFactor,
    SeveritySign,
    Sex,
    WithdrawalReason,
)

PRIORITIES: Mapping[Priority, str] = {
    Priority.STAT: "immédiate",
    Priority.ASAP: "dès que possible",
    Priority.URGENT: "urgente",
    Priority.ROUTINE: "ordinaire",
}
# What a priority means for the patient, whatever deadline a protocol version gives it.
PRIORITY_MEANINGS: Mapping[Priority, str] = {
    Priority.STAT: "sans délai, par le SAMU / les urgences",
    Priority.ASAP: "dans les heures",
    Priority.URGENT: "dans la journée",
    Priority.ROUTINE: "sans urgence",
}
# What a regulator decides, as the action (the console's choices, the audit's reasons).
DECISIONS: Mapping[Decision, str] = {
    Decision.ORIENT: "orienter vers un centre",
    Decision.ESCALATE: "adresser au SAMU / aux urgences",
    Decision.HOME_FOLLOW_UP: "suivi à domicile par le médecin traitant",
    Decision.REFUSE: "refuser",
    Decision.HOLD: "garder en attente d'un médecin régulateur",
}
CONSULTATION_OUTCOMES: Mapping[ConsultationOutcome, str] = {
    ConsultationOutcome.SEEN: "vu",
    ConsultationOutcome.NO_SHOW: "absent",
    ConsultationOutcome.CANCELLED: "annulé",
}
# Why a centre could not hold a consultation ("annulé"): the page's short list, and
# what the patient's notice and the referrer's status say.
CENTRE_CANCEL_REASONS: Mapping[CentreCancelReason, str] = {
    CentreCancelReason.DOCTOR_ABSENT: "médecin absent",
    CentreCancelReason.BOX_CLOSED: "box de consultation fermé",
    CentreCancelReason.EQUIPMENT_FAILURE: "matériel en panne",
    CentreCancelReason.OTHER: "empêchement du centre",
}
SEVERITY_SIGNS: Mapping[SeveritySign, str] = {
    SeveritySign.DYSPNOEA: "essoufflement inhabituel à la parole ou au moindre effort",
    SeveritySign.CONFUSION: "confusion, somnolence ou altération de la conscience",
    SeveritySign.UNABLE_TO_EAT_OR_DRINK: "impossibilité de s'alimenter ou de boire depuis "
    "24 h ou plus",
    SeveritySign.DEHYDRATION: "déshydratation",
    SeveritySign.SUDDEN_DECLINE_ELDERLY: "altération brutale de l'état général d'une personne âgée",
}
RISK_FACTORS: Mapping[RiskFactor, str] = {
    RiskFactor.CHRONIC_RESPIRATORY: "pathologie respiratoire chronique susceptible de décompenser",
    RiskFactor.HEART_FAILURE_NYHA_3_4: "insuffisance cardiaque NYHA III-IV",
    RiskFactor.COMPLICATED_HYPERTENSION: "hypertension artérielle compliquée",
    RiskFactor.STROKE_OR_CORONARY_HISTORY: "antécédent d'accident vasculaire cérébral ou "
    "de coronaropathie",
    RiskFactor.DIABETES_INSULIN_UNBALANCED: "diabète insulinodépendant non équilibré ou compliqué",
    RiskFactor.RENAL_FAILURE_DIALYSIS: "insuffisance rénale chronique dialysée",
    RiskFactor.CANCER_UNDER_TREATMENT: "cancer sous traitement",
    RiskFactor.IMMUNODEFICIENCY: "immunodépression",
    RiskFactor.CIRRHOSIS_B_OR_WORSE: "cirrhose au stade B ou plus",
    RiskFactor.MORBID_OBESITY: "obésité morbide (IMC de 40 ou plus)",
}
# Who cancelled, as the subject of "annulé par ...".
CANCELLED_BY: Mapping[CancelledBy, str] = {
    CancelledBy.REFERRER: "le médecin adresseur",
    CancelledBy.PATIENT: "le patient",
    CancelledBy.CENTRE: "le centre",
    CancelledBy.REGULATOR: "un médecin régulateur",
    CancelledBy.SERVICE: "le service (centre suspendu ou fermé)",
}
WITHDRAWAL_REASONS: Mapping[WithdrawalReason, str] = {
    WithdrawalReason.PATIENT_RECOVERED: "le patient va mieux",
    WithdrawalReason.SEEN_ELSEWHERE: "le patient a été vu ailleurs",
    WithdrawalReason.HOSPITALISED: "le patient a été hospitalisé",
    WithdrawalReason.REFERRAL_ERROR: "demande envoyée par erreur",
    WithdrawalReason.PATIENT_DECLINED: "le patient ne souhaite plus de consultation",
    WithdrawalReason.OTHER: "autre motif",
}
REFERRER_KINDS: Mapping[ReferrerKind, str] = {
    ReferrerKind.GP: "médecin traitant",
    ReferrerKind.CENTRE_15: "Centre 15",
    ReferrerKind.SOS_MEDECINS: "SOS Médecins",
    ReferrerKind.EMERGENCY_DEPARTMENT: "service des urgences",
}
CENTRE_KINDS: Mapping[CentreKind, str] = {
    CentreKind.TEMPORARY_DEDICATED: "centre dédié temporaire",
    CentreKind.HOSPITAL_ATTACHED: "adossé à un hôpital",
    CentreKind.MSP: "maison de santé (MSP)",
    CentreKind.CENTRE_DE_SANTE: "centre de santé",
    CentreKind.GROUP_PRACTICE: "cabinet de groupe",
}
SEXES: Mapping[Sex, str] = {
    Sex.FEMALE: "femme",
    Sex.MALE: "homme",
    Sex.OTHER: "autre",
    Sex.UNKNOWN: "non précisé",
}
PURPOSES: Mapping[Purpose, str] = {
    Purpose.CONSULTATION: "consultation",
    Purpose.SCREENING: "dépistage",
}
ALERT_KINDS: Mapping[AlertKind, str] = {
    AlertKind.SATURATION: "saturation",
    AlertKind.WAITING_LIST: "liste d'attente",
    AlertKind.FORECAST: "saturation prévue",
}
# Where a centre's request for reinforcement stands, as its page and the ARS's say it.
REINFORCEMENT_STATES: Mapping[ReinforcementState, str] = {
    ReinforcementState.REQUESTED: "en attente de réponse",
    ReinforcementState.ACKNOWLEDGED: "prise en compte par l'ARS",
    ReinforcementState.GRANTED: "accordée",
    ReinforcementState.DECLINED: "refusée",
}
# A request left two hours without a word from the ARS, raised to it again, once
# (reinforcement.raised_again): the ARS's page and its live journal.
REINFORCEMENT_RAISED_AGAIN = "relancée faute de réponse"
RECIPIENT_KINDS: Mapping[RecipientKind, str] = {
    RecipientKind.CENTRE: "centre",
    RecipientKind.REFERRER: "médecin adresseur",
    RecipientKind.PATIENT: "patient",
    RecipientKind.CENTRE_15: "Centre 15",
    RecipientKind.ONCALL: "astreinte de l'ARS",
}
CHANNELS: Mapping[Channel, str] = {
    Channel.BROKER: "message AMQP",
    Channel.WEBHOOK: "webhook",
    Channel.SMS: "SMS",
    Channel.EMAIL: "e-mail",
    Channel.RECORD: "registre (démonstration)",
}

_BY_ENUM: Mapping[type[StrEnum], Mapping[Any, str]] = {
    Priority: PRIORITIES,
    Decision: DECISIONS,
    ConsultationOutcome: CONSULTATION_OUTCOMES,
    CentreCancelReason: CENTRE_CANCEL_REASONS,
    SeveritySign: SEVERITY_SIGNS,
    RiskFactor: RISK_FACTORS,
    CancelledBy: CANCELLED_BY,
    WithdrawalReason: WITHDRAWAL_REASONS,
    ReferrerKind: REFERRER_KINDS,
    CentreKind: CENTRE_KINDS,
    Sex: SEXES,
    Purpose: PURPOSES,
    AlertKind: ALERT_KINDS,
    ReinforcementState: REINFORCEMENT_STATES,
    RecipientKind: RECIPIENT_KINDS,
    Channel: CHANNELS,
}


def label(code: StrEnum) -> str:
    """The French words for a code of ``shared.events``: ``label(Priority.ASAP)``."""
    return _BY_ENUM[type(code)][code]


def meaning(priority: Priority) -> str:
    """When a priority's patient is to be seen: ``dans les heures``."""
    return PRIORITY_MEANINGS[priority]


def capitalised(text: str) -> str:
    """A label at the start of a sentence or a form's choice (not ``str.capitalize``,
    which lowers the rest: "SOS Médecins" stays so)."""
    return text[:1].upper() + text[1:]


def by_code(labels: Mapping[Any, str], *, capital: bool = False) -> dict[str, str]:
    """A family's labels keyed by the code's string (a template, a ``.get(code)`` on a
    string from JSON), capitalised for a form's choices."""
    return {str(code): capitalised(text) if capital else text for code, text in labels.items()}


# -- codes that are a service's own strings -------------------------------------------

# Where a referral stands, as intake says it (services/intake/domain/status.py ``State``).
REFERRAL_STATES: Mapping[str, str] = {
    "received": "reçu",
    "rejected": "refusé à l'accueil",
    "regulated": "orienté vers un centre",
    "held_for_regulator": "en attente d'un régulateur",
    "escalated": "adressé au SAMU",
    "home_follow_up": "suivi à domicile",
    "refused": "refusé",
    "waitlisted": "en liste d'attente",
    "appointment": "rendez-vous donné",
    "cancelled": "annulé",
    "withdrawn": "retiré par le demandeur",
    "seen": "vu",
    "no_show": "absent",
}
# An appointment's status (FHIR Appointment), in the scheduler's and notifier's tables.
APPOINTMENT_STATUSES: Mapping[str, str] = {
    "booked": "prévu",
    "fulfilled": "vu",
    "noshow": "absent",
    "escalated": "escaladé",
    "cancelled": "annulé",
    "rescheduled": "déplacé",
}
CENTRE_STATUSES: Mapping[str, str] = {
    "active": "actif",
    "suspended": "suspendu",
    "closed": "fermé",
}
# Who decided a referral's orientation (the scheduler's ``by``, the regulation trail's
# ``decided_by`` being "protocol" or a regulator's identifier): the actor of a decision
# on the centre's page and on Centre 15's timeline.
DECIDERS: Mapping[str, str] = {
    "protocol": "le protocole (décision automatique)",
    "regulator": "un médecin régulateur du Centre 15",
    "received": "le service d'accueil",
}
# What a person did, as the console's audit trail records it (its ``action``).
AUDIT_ACTIONS: Mapping[str, str] = {
    "centre.activated": "activation d'un centre",
    "centre.capacity_changed": "changement de capacité",
    "centre.suspended": "suspension d'un centre",
    "centre.closed": "fermeture d'un centre",
    "consultation.outcome": "issue d'une consultation",
    "consultation.correction": "correction de l'issue d'une consultation",
    "reinforcement.requested": "demande de renfort",
    "reinforcement.acknowledged": "demande de renfort prise en compte",
    "reinforcement.granted": "renfort accordé",
    "reinforcement.declined": "renfort refusé",
    "regulation.decision": "décision de régulation",
    "referral.submitted": "adressage d'un patient",
    "referral.withdrawn": "retrait d'une demande",
}


def referral_state(code: str) -> str:
    """A referral's status or state (``appointment``): its label, or the code itself."""
    return REFERRAL_STATES.get(code, code)


def appointment_status(code: str) -> str:
    return APPOINTMENT_STATUSES.get(code, code)


def centre_status(code: str) -> str:
    return CENTRE_STATUSES.get(code, code)


# A measured vital, after its value: "SpO2 à 88 %", "fréquence respiratoire à 30/min".
VITAL_UNITS: Mapping[str, str] = {
    "spo2": " %",
    "respiratory_rate": "/min",
    "systolic_bp": " mmHg",
    "temperature_c": " °C",
}

# The FHIR door's own words (services/intake/domain/fhir.py): what a referrer's
# software shows of a ServiceRequest, an Appointment and the CapabilityStatement.
FHIR_SERVICE_REQUEST_NOTES: Mapping[str, str] = {
    "code": "Consultation en centre dédié, après régulation",
    "subject": "Patient de la demande (identité conservée par l'admission)",
    "implementation": "Aiguillage : porte FHIR R4 de l'admission des demandes d'orientation",
    "security": "Jeton porteur (Bearer) de l'adresseur, le même que pour l'API JSON.",
    "unknown_referrer": "Cet adresseur n'est pas enregistré : demandez-le à l'opérateur.",
}

# The FHIR door's refusals that are not a resource's fault, by HTTP status: the
# OperationOutcome's diagnostics (the JSON door's are the handlers' reasons).
FHIR_REFUSALS: Mapping[int, str] = {
    401: "Jeton absent, expiré, révoqué ou non reconnu : authentifiez-vous.",
    403: "Ce jeton ne permet pas cette action : seuls les adresseurs et le Centre 15 "
    "adressent, chacun en son nom.",
    404: "Aucune demande de cet adresseur sous cet identifiant.",
    405: "Méthode non prise en charge sur cette ressource.",
    422: "La requête ne correspond pas à ce que la ressource attend.",
    429: "Trop de demandes de cet adresseur : réessayez dans {seconds} s.",
}
