"""Value types shared by several events: the words the services agree on."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import JsonInt


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Bounds no larger than the columns the values are kept in (tests/unit/test_bounds.py):
# too long is refused with a reason, where PostgreSQL would fail the insert, and the
# message be retried, then dead-lettered.
RecordId = Annotated[str, Field(min_length=1, max_length=36)]
"""An id one of our services gave: a referral's, an appointment's (a UUID)."""
RoutingWord = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""A word of routing keys (a centre's id, a reply key): no dot, no wildcard."""
PatientRef = Annotated[str, Field(min_length=1, max_length=40)]
InseeCode = Annotated[str, Field(max_length=5, pattern=r"^(\d{5}|2[AB]\d{3})$")]


class ReferrerKind(StrEnum):
    GP = "gp"
    CENTRE_15 = "centre_15"
    SOS_MEDECINS = "sos_medecins"
    EMERGENCY_DEPARTMENT = "emergency_department"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Purpose(StrEnum):
    CONSULTATION = "consultation"
    # Centres are not screening centres: intake refuses this purpose with a reason.
    SCREENING = "screening"


class SeveritySign(StrEnum):
    """Signs that send a patient to SAMU / the emergency department, never to a centre."""

    DYSPNOEA = "dyspnoea"  # unusual shortness of breath when speaking or on slight effort
    CONFUSION = "confusion"  # confusion, drowsiness or altered consciousness
    UNABLE_TO_EAT_OR_DRINK = "unable_to_eat_or_drink"  # for 24 hours or more
    DEHYDRATION = "dehydration"
    SUDDEN_DECLINE_ELDERLY = "sudden_decline_elderly"


class RiskFactor(StrEnum):
    """Risk of a severe form (HCSP, March 2020); age and pregnancy are separate fields."""

    CHRONIC_RESPIRATORY = "chronic_respiratory"
    HEART_FAILURE_NYHA_3_4 = "heart_failure_nyha_3_4"
    COMPLICATED_HYPERTENSION = "complicated_hypertension"
    STROKE_OR_CORONARY_HISTORY = "stroke_or_coronary_history"
    DIABETES_INSULIN_UNBALANCED = "diabetes_insulin_unbalanced"
    RENAL_FAILURE_DIALYSIS = "renal_failure_dialysis"
    CANCER_UNDER_TREATMENT = "cancer_under_treatment"
    IMMUNODEFICIENCY = "immunodeficiency"
    CIRRHOSIS_B_OR_WORSE = "cirrhosis_b_or_worse"
    MORBID_OBESITY = "morbid_obesity"


class Vitals(Frozen):
    spo2: float | None = Field(None, description="SpO2 in ambient air, %.")
    respiratory_rate: int | None = Field(None, description="Breaths per minute.")
    systolic_bp: int | None = Field(None, description="Systolic blood pressure, mmHg.")
    temperature_c: float | None = Field(None, description="Body temperature, °C.")


class Clinical(Frozen):
    """The clinical picture: what regulation needs, nothing that identifies the patient."""

    symptomatic: bool
    symptoms: tuple[Annotated[str, Field(max_length=100)], ...] = Field((), max_length=30)
    onset_date: date | None = None
    # More than there are signs or factors: a repeat is harmless, a flood is not.
    severity_signs: tuple[SeveritySign, ...] = Field((), max_length=20)
    vitals: Vitals = Vitals()
    fatigue_bedridden: bool = Field(
        False, description="Fatigue that keeps the patient resting more than half the day."
    )
    risk_factors: tuple[RiskFactor, ...] = Field((), max_length=20)
    pregnancy_trimester: int | None = Field(None, ge=1, le=3)
    health_professional: bool = False
    consultation_needed: bool = Field(
        True, description="False when the referrer judges a consultation unnecessary."
    )


class Decision(StrEnum):
    ESCALATE = "escalate"  # SAMU / emergency department
    ORIENT = "orient"  # to a consultation centre
    HOME_FOLLOW_UP = "home_follow_up"  # by the GP
    REFUSE = "refuse"
    HOLD = "hold"  # for a regulator: not enough data to decide safely


class Priority(StrEnum):
    """FHIR ServiceRequest priorities, so that others can read what we publish."""

    STAT = "stat"
    ASAP = "asap"
    URGENT = "urgent"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """0 is the most urgent."""
        return list(Priority).index(self)


class AttachedDecision(Frozen):
    """A Centre 15 regulator's decision that travels with the referral it decides
    (``referral.submitted``, then ``referral.received``): regulation applies it as a
    ``regulation.decided`` from the moment the case exists, and the protocol's own
    decision never stands in its place. Only a Centre 15 referrer may attach one."""

    # As RegulationDecided's: the decision's decided_by (64) and its comment.
    regulator_id: str = Field(min_length=1, max_length=64)
    decision: Decision
    priority: Priority | None = None
    comment: str = Field("", max_length=2000)


class CentreKind(StrEnum):
    TEMPORARY_DEDICATED = "temporary_dedicated"
    HOSPITAL_ATTACHED = "hospital_attached"
    MSP = "msp"  # maison de santé pluriprofessionnelle
    CENTRE_DE_SANTE = "centre_de_sante"
    GROUP_PRACTICE = "group_practice"


class OpeningPeriod(Frozen):
    """Opening hours on one weekday (0 = Monday), local time, ``HH:MM``; 24:00 is midnight."""

    # Not lax: true would be read as Tuesday (1).
    weekday: JsonInt = Field(ge=0, le=6)
    opens: str = Field(max_length=5, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    closes: str = Field(max_length=5, pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class CancelledBy(StrEnum):
    PATIENT = "patient"
    CENTRE = "centre"
    REGULATOR = "regulator"
    SERVICE = "service"
    REFERRER = "referrer"


class WithdrawalReason(StrEnum):
    """Why a referrer withdraws a referral: stable codes, a short list its page offers."""

    PATIENT_RECOVERED = "patient_recovered"
    SEEN_ELSEWHERE = "seen_elsewhere"
    HOSPITALISED = "hospitalised"
    REFERRAL_ERROR = "referral_error"
    PATIENT_DECLINED = "patient_declined"
    OTHER = "other"


class Reason(Frozen):
    """A reason a sender can read: a stable code, the field concerned, a message."""

    code: str
    message: str
    field: str | None = None


class ReferrerRef(Frozen):
    """How to tell a referrer what became of its referral (no patient data)."""

    kind: ReferrerKind
    identifier: str = Field(
        max_length=64, description="RPPS, FINESS or the Centre 15's own identifier."
    )
    reply_to: RoutingWord | None = Field(
        None, description="Routing-key suffix: replies go to reply.<reply_to>."
    )
    webhook_url: str | None = Field(None, max_length=500)
    patient_channels: tuple[Literal["email", "sms"], ...] | None = Field(
        None,
        description="The patient channels the operator registered for this referrer: its "
        "patients are told by these only (and the demos' record). Absent: an unregistered "
        "referrer (development only), whose patients get every channel the notifier has.",
    )
