"""Intake's rules: what makes a referral acceptable, and how identity becomes a
pseudonym. Plain functions: no broker, no database."""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.events import (
    Clinical,
    PatientIdentity,
    Purpose,
    Reason,
    ReferralSubmitted,
    Vitals,
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
    patient, clinical = submission.patient, submission.clinical
    reasons = [
        *_screening(submission.purpose, clinical),
        *_birth_date(patient.birth_date, today),
        *_onset(clinical.onset_date, today),
        *(r for name in VITAL_LIMITS for r in _vital(name, getattr(clinical.vitals, name))),
        *_consent(patient.sms_consent, patient.phone),
    ]
    commune, commune_reasons = _commune(
        patient.commune_insee, patient.postcode, patient.commune_name
    )
    reasons += commune_reasons
    if reasons:
        return Refused(tuple(reasons))
    assert commune is not None
    return Accepted(submission, commune, age_on(patient.birth_date, today))


def reasons_beyond_schema(
    data: Mapping[str, Any], today: date, schema_reasons: Iterable[Reason] = ()
) -> tuple[Reason, ...]:
    """The rules that can still run on a submission that fails the schema, on its raw
    data, field by field: those whose fields did validate (birth date, onset, vitals,
    consent, commune, and screening when the whole clinical picture validates). The
    sender then gets every reason at once, not the schema's first and the rules' next.
    A rule whose field the schema already refused says nothing more about it."""
    patient = _mapping(data.get("patient"))
    clinical = _mapping(data.get("clinical"))
    vitals = _mapping(clinical.get("vitals", {})) if clinical is not None else None
    reasons: list[Reason] = []
    purpose = _field(ReferralSubmitted, "purpose", data)
    picture = _field(ReferralSubmitted, "clinical", data)
    if purpose and picture:
        reasons += _screening(purpose[0], picture[0])
    if patient is not None and (birth := _field(PatientIdentity, "birth_date", patient)):
        reasons += _birth_date(birth[0], today)
    if clinical is not None and (onset := _field(Clinical, "onset_date", clinical)):
        reasons += _onset(onset[0], today)
    if vitals is not None:
        for name in VITAL_LIMITS:
            if value := _field(Vitals, name, vitals):
                reasons += _vital(name, value[0])
    if patient is not None:
        consent = _field(PatientIdentity, "sms_consent", patient)
        phone = _field(PatientIdentity, "phone", patient)
        if consent and phone:
            reasons += _consent(consent[0], phone[0])
        place = [_field(PatientIdentity, k, patient) for k in _COMMUNE_FIELDS]
        if all(place):
            insee, postcode, name = (found[0] for found in place if found)
            reasons += _commune(insee, postcode, name)[1]
    refused = {r.field for r in schema_reasons}
    return tuple(r for r in reasons if r.field not in refused)


_COMMUNE_FIELDS = ("commune_insee", "postcode", "commune_name")


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    # The field's type with its constraints (bounds, patterns) and validators.
    annotated: Any = Annotated[info.annotation, info]
    return TypeAdapter(annotated)


def _field(model: type[BaseModel], name: str, raw: Mapping[str, Any]) -> tuple[Any] | None:
    """The field's value as the model would validate it (its default when absent), in
    a 1-tuple so that a valid None or False reads as found; None when it is invalid."""
    info = model.model_fields[name]
    if name not in raw:
        return None if info.is_required() else (info.get_default(call_default_factory=True),)
    try:
        return (_adapter(model, name).validate_python(raw[name]),)
    except ValidationError:
        return None


# -- the rules, each on the values it needs (validated by the model, or field by field) --


def _screening(purpose: Purpose, clinical: Clinical) -> list[Reason]:
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
    if purpose is not Purpose.SCREENING or not nothing_shown:
        return []
    return [
        Reason(
            code="screening_not_offered",
            field="purpose",
            message="Consultation centres are not screening centres: they see symptomatic "
            "patients oriented after medical regulation.",
        )
    ]


def _birth_date(birth_date: date, today: date) -> list[Reason]:
    if birth_date > today:
        return [
            Reason(
                code="birth_date_in_future",
                field="patient.birth_date",
                message="The birth date is in the future.",
            )
        ]
    if age_on(birth_date, today) > 125:
        return [
            Reason(
                code="birth_date_implausible",
                field="patient.birth_date",
                message="The birth date gives an age over 125 years.",
            )
        ]
    return []


def _onset(onset_date: date | None, today: date) -> list[Reason]:
    if onset_date is None or onset_date <= today:
        return []
    return [
        Reason(
            code="onset_in_future",
            field="clinical.onset_date",
            message="The onset date of symptoms is in the future.",
        )
    ]


def _vital(name: str, value: float | None) -> list[Reason]:
    low, high = VITAL_LIMITS[name]
    if value is None or low <= value <= high:
        return []
    return [
        Reason(
            code="vital_out_of_range",
            field=f"clinical.vitals.{name}",
            message=f"{name} = {value} is outside the plausible range {low}-{high}.",
        )
    ]


def _consent(sms_consent: bool, phone: str | None) -> list[Reason]:
    if not sms_consent or phone:
        return []
    return [
        Reason(
            code="missing_consent_field",
            field="patient.phone",
            message="SMS consent was given without a phone number.",
        )
    ]


def _commune(
    insee: str | None, postcode: str | None, name: str | None
) -> tuple[Commune | None, list[Reason]]:
    resolution = resolve_commune(insee=insee, postcode=postcode, name=name)
    if resolution.commune is not None:
        return resolution.commune, []
    candidates = ", ".join(f"{c.name} ({c.insee})" for c in resolution.candidates)
    message = {
        "ambiguous_postcode": f"The postcode covers several communes: {candidates}; "
        "give the commune's name or INSEE code.",
        "unknown_postcode": "No commune has this postcode.",
        "unknown_insee": "No commune has this INSEE code.",
        "missing": "Give the commune by INSEE code, or by postcode and name.",
    }.get(resolution.error or "", f"The commune cannot be resolved ({resolution.error}).")
    reason = Reason(
        code=f"commune_{resolution.error}", field="patient.commune_insee", message=message
    )
    return None, [reason]


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
