"""Intake's rules: what makes a referral acceptable, and how identity becomes a
pseudonym. Plain functions: no broker, no database."""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from dataclasses import dataclass
from datetime import date

from pydantic import ValidationError

from shared.events import (
    Purpose,
    Reason,
    ReferralSubmitted,
)
from shared.geo import Commune, resolve_commune

# Values outside these ranges are typing errors, not patients.
VITAL_LIMITS: dict[str, tuple[float, float]] = {
    "spo2": (50.0, 100.0),
    "respiratory_rate": (4, 80),
    "systolic_bp": (40, 300),
    "temperature_c": (30.0, 45.0),
}


@dataclass(frozen=True)
class Accepted:
    submission: ReferralSubmitted
    commune: Commune
    age: int


@dataclass(frozen=True)
class Refused:
    reasons: tuple[Reason, ...]


def age_on(birth_date: date, today: date) -> int:
    years = today.year - birth_date.year
    return years - ((today.month, today.day) < (birth_date.month, birth_date.day))


def reasons_from_validation_error(exc: ValidationError) -> tuple[Reason, ...]:
    """Every field that is wrong, with a stable code the sender can act on."""
    reasons = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        kind = error["type"]
        if location == "referrer.kind" and kind == "enum":
            code = "unknown_referrer_kind"
        elif kind == "missing":
            code = "missing_field"
        elif kind == "extra_forbidden":
            code = "unknown_field"
        else:
            code = f"invalid_{kind}"
        reasons.append(Reason(code=code, field=location or None, message=error["msg"]))
    return tuple(reasons)


def check(submission: ReferralSubmitted, today: date) -> Accepted | Refused:
    """The checks a schema cannot express; all of them, so the sender fixes all at once."""
    reasons: list[Reason] = []
    patient, clinical = submission.patient, submission.clinical
    # Intake does not own the protocol: the severity thresholds are regulation's data
    # (services/regulation/protocols), and a new version may move them. So intake
    # refuses a screening request only when the clinical picture shows nothing at all,
    # which no protocol can read as severe; anything else goes on to regulation, which
    # escalates a severity sign (and tells Centre 15) or refuses the plain screening.
    # Refusing here a patient at SpO2 88 % would tell the referrer "we do not screen"
    # and nobody "this patient goes to SAMU".
    #
    # The normal adult ranges, not a protocol's thresholds: a reading outside them is
    # something to regulate, whatever the protocol version in force makes of it.
    normal: dict[str, tuple[float, float]] = {
        "spo2": (95.0, 100.0),
        "respiratory_rate": (12, 20),
        "systolic_bp": (100, 140),
        "temperature_c": (36.0, 37.5),
    }
    measured = {name: getattr(clinical.vitals, name) for name in normal}
    abnormal_vital = any(
        value is not None and not normal[name][0] <= value <= normal[name][1]
        for name, value in measured.items()
    )
    nothing_shown = not (
        clinical.symptomatic
        or clinical.symptoms
        or clinical.severity_signs
        or clinical.fatigue_bedridden
        or abnormal_vital
    )
    if submission.purpose is Purpose.SCREENING and nothing_shown:
        reasons.append(
            Reason(
                code="screening_not_offered",
                field="purpose",
                message="Consultation centres are not screening centres: they see symptomatic "
                "patients oriented after medical regulation.",
            )
        )
    if patient.birth_date > today:
        reasons.append(
            Reason(
                code="birth_date_in_future",
                field="patient.birth_date",
                message="The birth date is in the future.",
            )
        )
    elif age_on(patient.birth_date, today) > 125:
        reasons.append(
            Reason(
                code="birth_date_implausible",
                field="patient.birth_date",
                message="The birth date gives an age over 125 years.",
            )
        )
    if clinical.onset_date is not None and clinical.onset_date > today:
        reasons.append(
            Reason(
                code="onset_in_future",
                field="clinical.onset_date",
                message="The onset date of symptoms is in the future.",
            )
        )
    for name, (low, high) in VITAL_LIMITS.items():
        value = getattr(clinical.vitals, name)
        if value is not None and not low <= value <= high:
            reasons.append(
                Reason(
                    code="vital_out_of_range",
                    field=f"clinical.vitals.{name}",
                    message=f"{name} = {value} is outside the plausible range {low}-{high}.",
                )
            )
    if patient.sms_consent and not patient.phone:
        reasons.append(
            Reason(
                code="missing_consent_field",
                field="patient.phone",
                message="SMS consent was given without a phone number.",
            )
        )
    resolution = resolve_commune(
        insee=patient.commune_insee, postcode=patient.postcode, name=patient.commune_name
    )
    if resolution.commune is None:
        candidates = ", ".join(f"{c.name} ({c.insee})" for c in resolution.candidates)
        message = {
            "ambiguous_postcode": f"The postcode covers several communes: {candidates}; "
            "give the commune's name or INSEE code.",
            "unknown_postcode": "No commune has this postcode.",
            "unknown_insee": "No commune has this INSEE code.",
            "missing": "Give the commune by INSEE code, or by postcode and name.",
        }.get(resolution.error or "", f"The commune cannot be resolved ({resolution.error}).")
        reasons.append(
            Reason(
                code=f"commune_{resolution.error}", field="patient.commune_insee", message=message
            )
        )
    if reasons:
        return Refused(tuple(reasons))
    assert resolution.commune is not None
    return Accepted(submission, resolution.commune, age_on(patient.birth_date, today))


def _normal(text: str) -> str:
    stripped = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(stripped.lower().split())


def pseudonym(secret: str, submission: ReferralSubmitted) -> str:
    """A stable reference for the same person, that cannot be reversed without the key."""
    p = submission.patient
    basis = p.nir or f"{_normal(p.last_name)}|{_normal(p.first_name)}|{p.birth_date.isoformat()}"
    digest = hmac.new(secret.encode(), basis.encode(), hashlib.sha256).hexdigest()
    return f"pat-{digest[:24]}"


def fingerprint(submission: ReferralSubmitted) -> str:
    """Content hash: the same reference with other content is a conflict."""
    canonical = json.dumps(submission.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
