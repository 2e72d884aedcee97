"""The referrer's form: its fields, the referral it becomes, the communes as one types.

Plain functions (no web framework): the routes are in aiguillage/console/referrer.py.
The form's field names are the referral's own paths (``patient.birth_date``,
``clinical.vitals.spo2``), so that each reason intake gives (``field``) lands beside
its field. Intake validates (the console only shapes what was typed): a value that
does not parse is sent as typed, for intake to say why in its words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.events import ReferrerKind
from shared.geo import Commune, communes, communes_for_postcode, normalise_name
from shared.labels import REFERRER_KINDS, RISK_FACTORS, SEVERITY_SIGNS, SEXES, by_code

# Bounds of the commune search: a query longer than any commune's name is refused, and
# a short list is all a person reads as they type.
MAX_QUERY = 50
MAX_RESULTS = 10
MIN_QUERY = 2

# A form's choices: the words of shared/labels.py, as everywhere a person reads them.
SEX_LABELS = by_code(SEXES, capital=True)
SIGN_LABELS = by_code(SEVERITY_SIGNS, capital=True)
RISK_LABELS = by_code(RISK_FACTORS, capital=True)
KIND_LABELS = by_code(REFERRER_KINDS, capital=True)


@dataclass(frozen=True)
class Vital:
    field: str
    label: str
    unit: str
    low: float
    high: float
    step: str
    integer: bool


# The plausible ranges intake applies (services/intake/domain/submission.py VITAL_LIMITS): a value
# outside them is a typing error, which intake refuses with its reason.
VITALS = (
    Vital("spo2", "SpO2 en air ambiant", "%", 50, 100, "0.1", False),
    Vital("respiratory_rate", "Fréquence respiratoire", "/min", 4, 80, "1", True),
    Vital("systolic_bp", "Pression artérielle systolique", "mmHg", 40, 300, "1", True),
    Vital("temperature_c", "Température", "°C", 30, 45, "0.1", False),
)

# The commune's three inputs report under intake's one field.
COMMUNE_FIELDS = ("patient.commune_insee", "patient.postcode", "patient.commune_name")


def referrer_of_actor(actor: str) -> tuple[str, str]:
    """(kind, identifier) of a referrer account's actor, ``<kind>-<identifier>``
    (``gp-10001234567``, ``sos_medecins-sos-rennes``); a bare identifier is a GP's."""
    kind, dash, identifier = actor.partition("-")
    if dash and kind in KIND_LABELS and kind != ReferrerKind.CENTRE_15.value and identifier:
        return kind, identifier
    return ReferrerKind.GP.value, actor


def _number(text: str, integer: bool) -> Any:
    cleaned = text.replace(",", ".").replace(" ", "")
    try:
        value = float(cleaned)
    except ValueError:
        return text  # as typed: intake says why it is not a number
    if integer and value.is_integer():
        return int(value)
    return cleaned if integer else value


def build_referral(
    form: dict[str, list[str]], referrer: dict[str, Any], reference: str
) -> dict[str, Any]:
    """The referral intake takes, from the form's fields (a list of values each)."""

    def one(name: str) -> str:
        return (form.get(name) or [""])[0].strip()

    def checked(name: str) -> bool:
        return one(name) in ("on", "true", "1", "oui")

    patient: dict[str, Any] = {}
    for name in (
        "first_name",
        "last_name",
        "birth_date",
        "sex",
        "nir",
        "phone",
        "email",
        "commune_insee",
        "postcode",
        "commune_name",
        "address",
    ):
        if value := one(f"patient.{name}"):
            patient[name] = value
    patient["sms_consent"] = checked("patient.sms_consent")
    vitals: dict[str, Any] = {}
    for vital in VITALS:
        if value := one(f"clinical.vitals.{vital.field}"):
            vitals[vital.field] = _number(value, vital.integer)
    symptoms = [s.strip() for s in one("clinical.symptoms").split(",") if s.strip()]
    clinical: dict[str, Any] = {
        "symptomatic": checked("clinical.symptomatic"),
        "symptoms": symptoms,
        "severity_signs": [s for s in form.get("clinical.severity_signs", []) if s],
        "risk_factors": [r for r in form.get("clinical.risk_factors", []) if r],
        "vitals": vitals,
        "fatigue_bedridden": checked("clinical.fatigue_bedridden"),
        "health_professional": checked("clinical.health_professional"),
        "consultation_needed": checked("clinical.consultation_needed"),
    }
    if onset := one("clinical.onset_date"):
        clinical["onset_date"] = onset
    if trimester := one("clinical.pregnancy_trimester"):
        clinical["pregnancy_trimester"] = _number(trimester, True)
    return {
        "referrer": referrer,
        "reference": reference,
        "patient": patient,
        "clinical": clinical,
        "purpose": one("purpose") or "consultation",
    }


def errors_by_field(reasons: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each reason's French message under the form field it concerns."""
    found: dict[str, list[str]] = {}
    for reason in reasons:
        field = str(reason.get("field") or "")
        if field in COMMUNE_FIELDS:
            field = "patient.commune_name"
        found.setdefault(field, []).append(str(reason.get("message") or reason.get("code")))
    return found


def field_id(name: str) -> str:
    return "champ-" + name.replace(".", "-").replace("_", "-")


@cache
def _names() -> tuple[tuple[str, Commune], ...]:
    # Once per process: the most populous first, so that "saint" lists the towns a
    # person most likely means.
    ordered = sorted(communes(), key=lambda c: -c.population)
    return tuple((normalise_name(c.name), c) for c in ordered)


def search_communes(query: str, limit: int = MAX_RESULTS) -> list[dict[str, Any]]:
    """Communes by postcode (its first digits) or name (its first letters, then any
    word), at most ``limit``; nothing for fewer than two characters."""
    text = query.strip()
    if len(text) < MIN_QUERY:
        return []
    found: list[Commune] = []
    if text.isdigit():
        if len(text) == 5:
            found = communes_for_postcode(text)
        else:
            found = [c for _, c in _names() if any(p.startswith(text) for p in c.postcodes)]
    else:
        wanted = normalise_name(text)
        if wanted:
            starts = [c for n, c in _names() if n.startswith(wanted)]
            words = [c for n, c in _names() if not n.startswith(wanted) and f" {wanted}" in f" {n}"]
            found = starts + words
    return [
        {
            "insee": c.insee,
            "name": c.name,
            "postcodes": list(c.postcodes),
            "departement": c.departement,
            "label": f"{c.name} ({', '.join(c.postcodes[:3]) or c.departement})",
        }
        for c in found[:limit]
    ]
