"""Value types shared by several events: the words the services agree on."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    symptoms: tuple[str, ...] = ()
    onset_date: date | None = None
    severity_signs: tuple[SeveritySign, ...] = ()
    vitals: Vitals = Vitals()
    fatigue_bedridden: bool = Field(
        False, description="Fatigue that keeps the patient resting more than half the day."
    )
    risk_factors: tuple[RiskFactor, ...] = ()
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


class CentreKind(StrEnum):
    TEMPORARY_DEDICATED = "temporary_dedicated"
    HOSPITAL_ATTACHED = "hospital_attached"
    MSP = "msp"  # maison de santé pluriprofessionnelle
    CENTRE_DE_SANTE = "centre_de_sante"
    GROUP_PRACTICE = "group_practice"


class OpeningPeriod(Frozen):
    """Opening hours on one weekday (0 = Monday), local time, ``HH:MM``; 24:00 is midnight."""

    weekday: int = Field(ge=0, le=6)
    opens: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    closes: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class CancelledBy(StrEnum):
    PATIENT = "patient"
    CENTRE = "centre"
    REGULATOR = "regulator"
    SERVICE = "service"
    REFERRER = "referrer"


class Reason(Frozen):
    """A reason a sender can read: a stable code, the field concerned, a message."""

    code: str
    message: str
    field: str | None = None


class ReferrerRef(Frozen):
    """How to tell a referrer what became of its referral (no patient data)."""

    kind: ReferrerKind
    identifier: str = Field(description="RPPS, FINESS or the Centre 15's own identifier.")
    reply_to: str | None = Field(
        None,
        description="Routing-key suffix: replies go to reply.<reply_to>.",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
    )
    webhook_url: str | None = None
