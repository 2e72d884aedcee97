"""Intake's rules: what makes a referral acceptable, and how identity becomes a
pseudonym. Plain functions: no broker, no database.

A door asks once (``examine``): the schema, then every rule that can run, so that the
sender gets every reason at once. On a submission that fits the schema the rules read
the model (``check``); on one that does not, the fields that did validate, one by one
(``reasons_beyond_schema``): each rule is written once and runs once either way."""

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
    ReferrerKind,
    Vitals,
)
from shared.events.phone import takes_sms
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
    # The submission when it fit the schema (only the rules refused it): its personal
    # values are then known, for the logs to leave out.
    submission: ReferralSubmitted | None = None


def age_on(birth_date: date, today: date) -> int:
    years = today.year - birth_date.year
    return years - ((today.month, today.day) < (birth_date.month, birth_date.day))


def _fr_value(value: object) -> str:
    # 50.0 reads "50" and 35.5 reads "35,5", as a French reader writes numbers.
    if isinstance(value, float):
        return f"{value:g}".replace(".", ",")
    return str(value)


# pydantic's messages are English; a referrer reads French. The common error types
# get their French text, with the bounds pydantic gives in the error's context; the
# code stays the type (``invalid_<type>``), for machines. The rest reads "Valeur
# invalide." rather than English.
_SCHEMA_MESSAGES: dict[str, str] = {
    "missing": "Champ obligatoire manquant.",
    "extra_forbidden": "Champ inconnu : il n'est pas accepté.",
    "string_type": "Un texte est attendu.",
    "string_too_short": "Texte trop court (au moins {min_length} caractère(s)).",
    "string_too_long": "Texte trop long (au plus {max_length} caractères).",
    "string_pattern_mismatch": "Format invalide.",
    "int_type": "Un nombre entier est attendu.",
    "int_parsing": "Un nombre entier est attendu.",
    "int_from_float": "Un nombre entier est attendu.",
    "float_type": "Un nombre est attendu.",
    "float_parsing": "Un nombre est attendu.",
    "bool_type": "Vrai ou faux (true ou false) est attendu.",
    "bool_parsing": "Vrai ou faux (true ou false) est attendu.",
    "date_type": "Une date AAAA-MM-JJ est attendue.",
    "date_parsing": "Une date AAAA-MM-JJ est attendue.",
    "date_from_datetime_parsing": "Une date AAAA-MM-JJ est attendue.",
    "date_from_datetime_inexact": "Une date AAAA-MM-JJ est attendue, sans heure.",
    "datetime_type": "Une date et heure ISO 8601 est attendue.",
    "datetime_parsing": "Une date et heure ISO 8601 est attendue.",
    "greater_than": "La valeur doit être supérieure à {gt}.",
    "greater_than_equal": "La valeur doit être supérieure ou égale à {ge}.",
    "less_than": "La valeur doit être inférieure à {lt}.",
    "less_than_equal": "La valeur doit être inférieure ou égale à {le}.",
    "enum": "Valeur inconnue ; valeurs possibles : {expected}.",
    "literal_error": "Valeur inconnue ; valeurs possibles : {expected}.",
    "too_short": "Pas assez d'éléments (au moins {min_length}).",
    "too_long": "Trop d'éléments (au plus {max_length}).",
    "list_type": "Une liste est attendue.",
    "tuple_type": "Une liste est attendue.",
    "set_type": "Une liste est attendue.",
    "dict_type": "Un objet est attendu.",
    "model_type": "Un objet est attendu.",
    "model_attributes_type": "Un objet est attendu.",
    "json_invalid": "JSON invalide.",
    "url_type": "Une adresse (URL) est attendue.",
    "url_parsing": "Adresse (URL) invalide.",
    "url_scheme": "Adresse (URL) invalide : schéma non accepté.",
    "uuid_type": "Un identifiant (UUID) est attendu.",
    "uuid_parsing": "Identifiant (UUID) invalide.",
    "nir_format": "Le NIR comporte 15 caractères : sexe, année et mois de naissance, "
    "département (2A ou 2B pour la Corse), commune, numéro d'ordre et clé à 2 chiffres ; "
    "les espaces sont admis.",
    "nir_key": "La clé de contrôle du NIR ne correspond pas à ses 13 premiers caractères.",
    "phone": "Numéro de téléphone invalide : un numéro français à 10 chiffres (06…, 01…), "
    "d'outre-mer (0262…, 0590…, 0696…) ou d'un autre pays sous sa forme internationale "
    "(+ et l'indicatif du pays).",
}


def _schema_message(error: Mapping[str, Any]) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    template = _SCHEMA_MESSAGES.get(kind)
    if template is None:
        return "Valeur invalide."
    values = {key: _fr_value(value) for key, value in context.items()}
    if "expected" in values:  # pydantic lists them "'a', 'b' or 'c'"
        values["expected"] = values["expected"].replace(" or ", " ou ")
    try:
        return template.format(**values)
    except (KeyError, IndexError):  # a context without the bound: the text without it
        return template.split(" (", 1)[0].rstrip(".") + "."


def reasons_from_validation_error(exc: ValidationError) -> tuple[Reason, ...]:
    """Every field that is wrong, with a stable code the sender can act on and a French
    message the person who sent it can read."""
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
        message = _schema_message(error)
        reasons.append(Reason(code=code, field=location or None, message=message))
    return tuple(reasons)


def examine(data: Mapping[str, Any], today: date) -> Accepted | Refused:
    """A submission's raw data, judged: accepted, or refused with every reason, the
    schema's and the rules' on what did validate."""
    try:
        submission = ReferralSubmitted.model_validate(data)
    except ValidationError as exc:
        reasons = reasons_from_validation_error(exc)
        return Refused(reasons + reasons_beyond_schema(data, today, reasons))
    return check(submission, today)


def check(submission: ReferralSubmitted, today: date) -> Accepted | Refused:
    """The checks a schema cannot express; all of them, so the sender fixes all at once."""
    patient, clinical = submission.patient, submission.clinical
    reasons = [
        *_screening(submission.purpose, clinical),
        *_birth_date(patient.birth_date, today),
        *_onset(clinical.onset_date, today),
        *(r for name in VITAL_LIMITS for r in _vital(name, getattr(clinical.vitals, name))),
        *_consent(patient.sms_consent, patient.phone),
        *_attached_decision(submission),
    ]
    commune, commune_reasons = _commune(
        patient.commune_insee, patient.postcode, patient.commune_name
    )
    reasons += commune_reasons
    if reasons:
        return Refused(tuple(reasons), submission)
    assert commune is not None
    return Accepted(submission, commune, age_on(patient.birth_date, today))


def _attached_decision(submission: ReferralSubmitted) -> list[Reason]:
    """Only Centre 15 regulates: a decision attached by another referrer would let it
    choose its own patient's orientation over the protocol's."""
    if submission.regulator_decision is None or submission.referrer.kind is ReferrerKind.CENTRE_15:
        return []
    return [
        Reason(
            code="decision_not_allowed",
            field="regulator_decision",
            message="Seul le Centre 15 joint une décision de régulation à une demande.",
        )
    ]


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
            message="Les centres de consultation ne sont pas des centres de dépistage : ils "
            "reçoivent des patients symptomatiques orientés après régulation médicale.",
        )
    ]


def _birth_date(birth_date: date, today: date) -> list[Reason]:
    if birth_date > today:
        return [
            Reason(
                code="birth_date_in_future",
                field="patient.birth_date",
                message="La date de naissance est dans le futur.",
            )
        ]
    if age_on(birth_date, today) > 125:
        return [
            Reason(
                code="birth_date_implausible",
                field="patient.birth_date",
                message="La date de naissance donne un âge de plus de 125 ans.",
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
            message="La date de début des symptômes est dans le futur.",
        )
    ]


_VITAL_NAMES = {
    "spo2": "SpO2",
    "respiratory_rate": "Fréquence respiratoire",
    "systolic_bp": "Pression artérielle systolique",
    "temperature_c": "Température",
}


def _vital(name: str, value: float | None) -> list[Reason]:
    low, high = VITAL_LIMITS[name]
    if value is None or low <= value <= high:
        return []
    return [
        Reason(
            code="vital_out_of_range",
            field=f"clinical.vitals.{name}",
            message=f"{_VITAL_NAMES[name]} {_fr_value(value)} : hors des valeurs plausibles "
            f"({_fr_value(low)} à {_fr_value(high)}).",
        )
    ]


def _consent(sms_consent: bool, phone: str | None) -> list[Reason]:
    """SMS consent needs a number an SMS reaches. A landline is refused rather than the
    consent dropped: the referrer believes the patient will get an SMS, and must learn
    now that they will not (the number is valid: the schema checked it)."""
    if not sms_consent:
        return []
    if not phone:
        return [
            Reason(
                code="missing_consent_field",
                field="patient.phone",
                message="Consentement aux SMS donné sans numéro de téléphone.",
            )
        ]
    if takes_sms(phone):
        return []
    return [
        Reason(
            code="sms_to_landline",
            field="patient.phone",
            message="Consentement aux SMS donné pour un numéro qui n'est pas un mobile "
            "(fixe, box internet, numéro spécial) : il ne reçoit pas de SMS. Donnez le "
            "numéro de mobile du patient, ou retirez le consentement aux SMS.",
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
        "ambiguous_postcode": f"Le code postal couvre plusieurs communes : {candidates} ; "
        "précisez le nom de la commune ou son code INSEE.",
        "unknown_postcode": "Aucune commune n'a ce code postal.",
        "unknown_insee": "Aucune commune n'a ce code INSEE.",
        "missing": "Indiquez la commune par son code INSEE, ou par son code postal et son nom.",
    }.get(resolution.error or "", f"La commune ne peut pas être déterminée ({resolution.error}).")
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
    # Without an absent decision: a referral kept before the field existed reads the same.
    absent = {"regulator_decision"} if submission.regulator_decision is None else None
    canonical = json.dumps(submission.model_dump(mode="json", exclude=absent), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
