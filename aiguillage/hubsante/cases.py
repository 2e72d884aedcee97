"""An RS-EDA case (createCaseHealth) read as an Aiguillage referral from Centre 15, and
an RS-EDA-MAJ update as its correction (``correction``).

Pure functions: no broker, no database. What a referral needs and the case does not
say is named (``Insufficient``): the door answers it with the hub's 704.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.events import (
    Clinical,
    Decision,
    PatientIdentity,
    Priority,
    ReferralSubmitted,
    ReferralUpdated,
    Referrer,
    ReferrerKind,
    SeveritySign,
    Sex,
)
from shared.events.vocabulary import AttachedDecision
from shared.senders import CENTRE_15_KEY

_AGE = re.compile(r"^P(\d{1,3})([YMWD])$")
_SEX = {"M": Sex.MALE, "F": Sex.FEMALE, "O": Sex.OTHER, "UN": Sex.UNKNOWN}
# The case's priority (P0 most urgent) in FHIR's words, as regulation speaks them.
_PRIORITY = {
    "P0": Priority.STAT,
    "P1": Priority.ASAP,
    "P2": Priority.URGENT,
    "P3": Priority.ROUTINE,
}
# Where an ORIENT decision sends the patient: a consultation (a health centre, a
# practice) is ours; an emergency department is an escalation; home is the GP's.
_ORIENTATION = {
    "SANTE": Decision.ORIENT,
    "CABINET": Decision.ORIENT,
    "URGENCES": Decision.ESCALATE,
    "REA-USI": Decision.ESCALATE,
    "DOMICILE": Decision.HOME_FOLLOW_UP,
}
# A BAN address key (Base Adresse Nationale): the commune's INSEE code, then the
# street's and the number's codes, joined by "_".
_BAN_KEY = re.compile(r"^(\d{5}|2[AB]\d{3})(?:_|$)")
SYMPTOM_LENGTH = 100  # Clinical.symptoms' bound: each note is cut to it
# The severity signs a regulator's notes name, in their words (lower case, without
# accents): the case carries no coded sign, and a sign written in a note must still
# escalate (clinical safety first: a sign read where there is none sends a patient to
# SAMU, which the regulator hears; a sign missed sends a severe patient to a centre).
_SIGN_WORDS: dict[SeveritySign, tuple[str, ...]] = {
    SeveritySign.DYSPNOEA: (
        "dyspne",
        "essouffl",
        "detresse respiratoire",
        "polypne",
        "difficulte a respirer",
        "difficultes a respirer",
    ),
    SeveritySign.CONFUSION: (
        "confus",
        "somnolen",
        "desorient",
        "trouble de la conscience",
        "troubles de la conscience",
        "alteration de la conscience",
    ),
    SeveritySign.UNABLE_TO_EAT_OR_DRINK: (
        "ne s'alimente plus",
        "ne boit plus",
        "ne mange plus",
        "impossible de s'alimenter",
        "impossibilite de s'alimenter",
    ),
    SeveritySign.DEHYDRATION: ("deshydrat",),
    SeveritySign.SUDDEN_DECLINE_ELDERLY: (
        "degradation brutale",
        "alteration brutale",
        "aggravation brutale",
    ),
}
# A sign denied just before its word ("pas de dyspnée", "sans confusion") is not one.
_NEGATION = re.compile(r"(?:\bpas\b|\bsans\b|\babsence\b|\baucun\w*|\bni\b|\bnie\b)[^.;,]{0,20}$")


class Insufficient(Exception):
    """The case lacks what a referral needs: the reasons, for the 704's cause."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


@dataclass(frozen=True, slots=True)
class RegulatorDecision:
    decision: Decision | None  # None: the regulator's last word names no action of ours
    cancel: bool  # PASPLUS: nothing more to do for this patient
    regulator: str
    patient_id: str | None


def content_hash(content: Any) -> str:
    """The case as sent, for telling a resubmission from a reused case id (701)."""
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def last_decision(case: dict[str, Any]) -> RegulatorDecision | None:
    """The regulator's latest decision in the case (by its creation time)."""
    decisions = [d for d in case.get("decision") or [] if isinstance(d, dict)]
    if not decisions:
        return None
    latest = max(decisions, key=lambda d: str(d.get("creation", "")))
    kind = latest.get("decisionType")
    decision: Decision | None = None
    if kind == "ORIENT":
        decision = _ORIENTATION.get(str(latest.get("orientationType")))
    elif kind == "INTER":
        decision = Decision.ESCALATE  # a team sent to the patient: SAMU's, not a centre's
    elif kind == "CONSEIL":
        decision = Decision.HOME_FOLLOW_UP
    operator = latest.get("operator") or {}
    regulator = str(operator.get("label") or operator.get("role") or "regulateur")[:64]
    return RegulatorDecision(
        decision=decision,
        cancel=kind == "PASPLUS",
        regulator=regulator,
        patient_id=latest.get("patientId"),
    )


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def severity_signs(notes: list[str]) -> tuple[SeveritySign, ...]:
    """The severity signs the case's notes name, each once, in the vocabulary's order;
    a sign the note denies just before naming it ("pas de dyspnée") is not counted."""
    found: list[SeveritySign] = []
    for note in (_plain(n) for n in notes):
        for sign, words in _SIGN_WORDS.items():
            if sign not in found and any(_named(note, word) for word in words):
                found.append(sign)
    return tuple(sign for sign in SeveritySign if sign in found)


def _named(note: str, word: str) -> bool:
    start = note.find(word)
    while start >= 0:
        if not _NEGATION.search(note[:start]):
            return True
        start = note.find(word, start + 1)
    return False


def attached(case: dict[str, Any], decision: RegulatorDecision) -> AttachedDecision | None:
    """The regulator's decision, as it travels with the referral (regulation applies it
    as Centre 15's regulation.decided): the case's priority, the regulator's label."""
    if decision.decision is None:
        return None
    return AttachedDecision(
        regulator_id=decision.regulator,
        decision=decision.decision,
        priority=priority(case) if decision.decision is Decision.ORIENT else None,
        comment=f"Hub Santé, dossier {str(case.get('caseId', ''))[:100]}",
    )


def priority(case: dict[str, Any]) -> Priority | None:
    details = (case.get("qualification") or {}).get("details") or {}
    return _PRIORITY.get(str(details.get("priority")))


def birth_date(age: str, on: date) -> date:
    """A birth date consistent with an ISO 8601 age (``P65Y``, ``P21M``...) on the day
    of the case: the same day that many years (months...) before, so the age reads the
    same for the year (month) that follows."""
    match = _AGE.match(age)
    if match is None:
        raise ValueError(age)
    count, unit = int(match.group(1)), match.group(2)
    if unit in "WD":
        return date.fromordinal(on.toordinal() - count * (7 if unit == "W" else 1))
    months = count * (12 if unit == "Y" else 1)
    year, month = divmod(on.year * 12 + on.month - 1 - months, 12)
    day = on.day
    while True:  # 31 March less a month is the last day of February
        try:
            return date(year, month + 1, day)
        except ValueError:
            day -= 1


def _case_day(case: dict[str, Any]) -> date:
    try:
        return datetime.fromisoformat(str(case["creation"])).date()
    except (KeyError, ValueError):
        return date.today()


def _patient(case: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    patients = [p for p in case.get("patient") or [] if isinstance(p, dict)]
    if wanted is not None:
        patients = [p for p in patients if p.get("patientId") == wanted] or patients
    if len(patients) != 1:
        raise Insufficient(
            ["no patient in the case"]
            if not patients
            else ["several patients and the decision names none (patient[].patientId)"]
        )
    return patients[0]


def referral(case: dict[str, Any], sender: str, decision: RegulatorDecision) -> ReferralSubmitted:
    """The referral from Centre 15 that a case oriented to a consultation makes."""
    patient = _patient(case, decision.patient_id)
    identity = patient.get("identity") or {}
    names = identity.get("nonStrictFeatures") or {}
    strict = identity.get("strictFeatures") or {}
    detail = patient.get("detail") or {}
    reasons = []
    first, last = (
        str(names.get("firstName") or "").strip(),
        str(names.get("lastName") or "").strip(),
    )
    if not first or not last:
        reasons.append("the patient's first and last names (identity.nonStrictFeatures)")
    born: date | None = None
    if strict.get("birthDate"):
        born = date.fromisoformat(str(strict["birthDate"]))
    elif detail.get("age"):
        born = birth_date(str(detail["age"]), _case_day(case))
    else:
        reasons.append("the patient's age or birth date (detail.age, strictFeatures.birthDate)")
    insee = ((case.get("location") or {}).get("city") or {}).get("inseeCode")
    if not insee:
        reasons.append("the commune's INSEE code (location.city.inseeCode)")
    if reasons:
        raise Insufficient([f"missing {r}" for r in reasons])
    assert born is not None
    whole = [
        str(n.get("freetext", "")).strip()
        for n in case.get("medicalNote") or []
        if isinstance(n, dict) and n.get("freetext")
    ]
    notes = [n[:SYMPTOM_LENGTH] for n in whole]
    return ReferralSubmitted(
        referrer=Referrer(
            kind=ReferrerKind.CENTRE_15,
            identifier=sender[:64],
            name=str(case.get("owner") or sender)[:200],
            reply_to=CENTRE_15_KEY,
        ),
        reference=str(case["caseId"])[:100],
        patient=PatientIdentity(
            first_name=first[:100],
            last_name=last[:100],
            birth_date=born,
            sex=_SEX.get(str(strict.get("sex")), Sex.UNKNOWN),
            commune_insee=str(insee),
        ),
        # The regulator (a physician) oriented the patient to a Covid consultation: that
        # is the judgement "symptomatic" records, and their decision travels with the
        # referral (regulation applies it, never the protocol's own orientation). What
        # the case does not carry (vitals, risk factors) stays unknown; a severity sign
        # its notes name still escalates.
        clinical=Clinical(
            symptomatic=True, symptoms=tuple(notes[:30]), severity_signs=severity_signs(whole)
        ),
        regulator_decision=attached(case, decision),
    )


def _commune(location: dict[str, Any]) -> str | None:
    """The commune a case's location names: its city's INSEE code, or (RS-EDA-MAJ's
    location carries no city) a BAN address key's, whose first part is the commune's
    INSEE code (``35288_0150_00012``: Saint-Malo)."""
    insee = (location.get("city") or {}).get("inseeCode")
    if insee:
        return str(insee)
    for info in location.get("externalInfo") or []:
        if isinstance(info, dict) and info.get("freetext") == "BAN":
            match = _BAN_KEY.match(str(info.get("uri", "")))
            if match:
                return match.group(1)
    return None


def correction(case: dict[str, Any], referral_id: str) -> ReferralUpdated | None:
    """What an update of the case (RS-EDA-MAJ) corrects of its referral's patient: the
    names and birth date of its one patient, the commune of its location (``_commune``).
    None when it names none of them (notes, a qualification: received, nothing to
    apply). An update naming several patients corrects none of their identities: which
    is the referral's is not said."""
    patients = [p for p in case.get("patient") or [] if isinstance(p, dict)]
    identity = (patients[0].get("identity") or {}) if len(patients) == 1 else {}
    names = identity.get("nonStrictFeatures") or {}
    strict = identity.get("strictFeatures") or {}
    fields: dict[str, Any] = {
        "first_name": str(names.get("firstName") or "").strip()[:100] or None,
        "last_name": str(names.get("lastName") or "").strip()[:100] or None,
        "birth_date": date.fromisoformat(str(strict["birthDate"]))
        if strict.get("birthDate")
        else None,
        "commune_insee": _commune(case.get("location") or {}),
    }
    named = {k: v for k, v in fields.items() if v is not None}
    if not named:
        return None
    # A value the referral cannot hold (an INSEE code of another shape) raises
    # ValueError: the door answers it 704, as for a case it cannot read.
    return ReferralUpdated(referral_id=referral_id, **named)
