"""Message texts, in French, for the centres and the referrers the notifier tells (the
patients' are services/notifier/domain/patient_notices.py)."""

from __future__ import annotations

import re
from datetime import datetime

from shared.geo import commune
from shared.labels import PRIORITIES, SEVERITY_SIGNS, by_code
from shared.paris import paris_fr


def local_time(value: datetime) -> str:
    """``24/03/2020 à 16h40 (heure de Paris)``: the instants travel in UTC, a person
    reads Paris time and is told so."""
    return paris_fr(value)


def place(name: str, address: str | None, insee: str) -> str:
    town = commune(insee)
    parts = [name, address, town.name if town else None]
    return ", ".join(p for p in parts if p)


# Names that take "au" as they stand (a masculine noun starting with a consonant):
# "au CHU Pontchaillou", "au Centre hospitalier privé de Saint-Grégoire". Any other
# name is quoted after "au centre", which is right whatever its gender or first
# letter: "au centre « École de la Poterie »", never "au École de la Poterie".
_TAKES_AU = {"centre", "chu", "chr", "ch", "cabinet", "gymnase", "pôle", "site", "dispensaire"}


def _at_centre(name: str) -> str:
    first = name.split(maxsplit=1)[0].lower() if name.strip() else ""
    return f"au {name}" if first in _TAKES_AU else f"au centre « {name} »"


def where_at(name: str, address: str | None, insee: str) -> str:
    """Where to go, after a verb: ``au centre « École de la Poterie », 12 rue…, Rennes``."""
    town = commune(insee)
    parts = [_at_centre(name), address, town.name if town else None]
    return ", ".join(p for p in parts if p)


PRIORITY_FR = by_code(PRIORITIES)  # shared/labels.py


def _test(test_eligible: bool) -> str:
    return f"Test à prescrire : {'oui' if test_eligible else 'non'}."


# -- centres -------------------------------------------------------------------------


def centre_new_patient(
    patient_ref: str, start: datetime, priority: str, box: int, test_eligible: bool = False
) -> str:
    return (
        f"Nouveau patient orienté : {patient_ref}, rendez-vous le {local_time(start)}, "
        f"box {box}, priorité {PRIORITY_FR.get(priority, priority)}. {_test(test_eligible)}"
    )


def centre_rescheduled(
    patient_ref: str, start: datetime, previous_centre: str, test_eligible: bool = False
) -> str:
    return (
        f"Patient reporté depuis le centre {previous_centre} : {patient_ref}, "
        f"rendez-vous le {local_time(start)}. {_test(test_eligible)}"
    )


def centre_cancelled(patient_ref: str, start: datetime, reason: str) -> str:
    return f"Rendez-vous annulé : {patient_ref}, le {local_time(start)}. Motif : {reason}."


# -- referrers -----------------------------------------------------------------------


# Regulation's reasons are worded in French by the protocol (its ``messages``), for
# Centre 15's page and the audit as much as for the referrer. The referrer's answer
# lists the severity findings more tersely: each is named here by its stable code; a
# measured vital also gives its value and the protocol's threshold, the first two
# numbers of the reason's message (value, then threshold, as v1's wording has them).
_SEVERITY_SIGNS = {f"severity.sign.{sign}": words for sign, words in SEVERITY_SIGNS.items()}
_SEVERITY_VITALS = {
    "severity.spo2": ("SpO2 {} % (< {} %)", "SpO2 sous le seuil"),
    "severity.respiratory_rate": (
        "fréquence respiratoire {}/min (> {}/min)",
        "fréquence respiratoire au-dessus du seuil",
    ),
    "severity.systolic_bp": (
        "pression artérielle systolique {} mmHg (< {} mmHg)",
        "pression artérielle systolique sous le seuil",
    ),
}
# A number on its own, not the 2 of "SpO2"; with a decimal comma (the protocol's
# French) or point (outcomes kept from before it).
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?")


def _severity_fr(code: str, message: str) -> str | None:
    if code in _SEVERITY_SIGNS:
        return _SEVERITY_SIGNS[code]
    if code in _SEVERITY_VITALS:
        text, without_values = _SEVERITY_VITALS[code]
        numbers = [n.replace(".", ",") for n in _NUMBER.findall(message)]
        return text.format(*numbers[:2]) if len(numbers) >= 2 else without_values
    if code.startswith("severity."):
        # A sign of a later protocol this list does not know yet: named as the
        # protocol words it rather than not named at all.
        return message.rstrip(".")
    return None


def severity_signs(detail: dict[str, object]) -> list[str]:
    """The severity findings among an outcome's reasons, in French, in their order."""
    found: list[str] = []
    reasons = detail.get("reason_details")
    for reason in reasons if isinstance(reasons, list) else []:
        if isinstance(reason, dict):
            named = _severity_fr(str(reason.get("code", "")), str(reason.get("message", "")))
            if named is not None and named not in found:
                found.append(named)
    return found


def _escalated(detail: dict[str, object]) -> str:
    signs = severity_signs(detail)
    if not signs:  # a regulator's escalation may name none
        return "Orientation vers le SAMU / les urgences (signes de gravité)."
    return f"Orientation vers le SAMU / les urgences : {' ; '.join(signs)}."


def _lead_reason(detail: dict[str, object]) -> str | None:
    """The message of the reason that decided (the first), as the protocol words it."""
    reasons = detail.get("reason_details")
    if isinstance(reasons, list) and reasons and isinstance(reasons[0], dict):
        message = str(reasons[0].get("message") or "").strip()
        return message or None
    return None


def _decided(text: str, detail: dict[str, object]) -> str:
    # The protocol's French reason, so that the referrer learns why, not only what;
    # the plain text alone when the outcome carries none (a regulator's, an old one).
    lead = _lead_reason(detail)
    return f"{text} Motif : {lead}" if lead else text


_OUTCOME_FR = {"seen": "vu", "no_show": "absent"}


def _corrected(text: str, detail: dict[str, object]) -> str:
    """A centre's correction of the outcome it recorded says so, and what it replaces."""
    if not detail.get("corrected"):
        return text
    before = _OUTCOME_FR.get(str(detail.get("previous_outcome")))
    was = f" (le patient avait été noté « {before} »)" if before else ""
    reason = f" Motif : {detail['reason']}." if detail.get("reason") else ""
    return f"Issue corrigée par le centre{was} : {text[0].lower()}{text[1:]}{reason}"


def referrer_outcome(status: str, detail: dict[str, object]) -> str:
    when = detail.get("start")
    at = local_time(datetime.fromisoformat(str(when))) if when else ""
    # Every reason of a refusal (a screening request without symptoms is both), in the
    # protocol's French; outcomes kept from before the details travelled give the text.
    details = detail.get("reason_details")
    worded = [
        str(r.get("message"))
        for r in (details if isinstance(details, list) else [])
        if isinstance(r, dict) and r.get("message")
    ]
    reasons = " ".join(worded) if worded else str(detail.get("reasons") or "")
    # Outcomes kept from before the verdict travelled with the appointment lack it:
    # nothing said rather than a "non" nobody decided.
    test = f" {_test(bool(detail['test_eligible']))}" if "test_eligible" in detail else ""
    why = f" ({detail['reason']})" if detail.get("reason") else ""
    motive = f" Motif : {detail['reason']}." if detail.get("reason") else ""
    if detail.get("by") == "centre" and detail.get("reason"):
        # The reason is the centre's own words (``médecin absent``): say whose it is.
        motive = f" Le centre n'a pas pu assurer la consultation ({detail.get('reason')})."
    # What happens next, where a process of ours does it: Centre 15 has the escalated
    # patient's contact and lists them to call back; the scheduler books a waiting
    # patient when a place frees up, and that booking is told; a regulator's decision
    # is told, whatever it is. Nothing rebooks a patient who did not come.
    return {
        "appointment": f"Rendez-vous attribué le {at}, {detail.get('centre_name')}.{test}",
        "rescheduled": f"Rendez-vous déplacé : le {at}, {detail.get('centre_name')}.{motive}{test}",
        "escalated": f"{_escalated(detail)} {CALLED_BACK}",
        "home_follow_up": _decided("Suivi à domicile par le médecin traitant.", detail),
        "refused": f"Demande refusée : {reasons}" if reasons else "Demande refusée.",
        "held_for_regulator": _decided("En attente de la décision d'un médecin régulateur.", detail)
        + " Vous serez informé de sa décision.",
        "waitlisted": "Aucun créneau disponible : patient en liste d'attente. Un rendez-vous "
        "lui sera réservé dès qu'une place se libère près de chez lui, et vous en serez "
        "informé.",
        "cancelled": _cancelled(detail),
        "no_show": _corrected(
            "Le patient ne s'est pas présenté au rendez-vous. Aucun autre rendez-vous ne lui "
            "est réservé : adressez-le à nouveau si besoin.",
            detail,
        ),
        "seen": _corrected("Le patient a été vu en consultation.", detail),
        "escalated_by_centre": f"Le centre a réadressé le patient au Centre 15{why}. {CALLED_BACK}",
    }.get(status, status)


CALLED_BACK = "Le Centre 15 en est informé et rappelle le patient."


def _cancelled(detail: dict[str, object]) -> str:
    """By who, and why: a withdrawal is final; a centre withdrawn by the ARS is followed
    by the waiting list's outcome, a regulator's new decision by its own."""
    by, why = detail.get("by"), detail.get("reason")
    if detail.get("appointment_cancelled") is False:
        # Withdrawn before any appointment (received, waitlisted, held): the request alone.
        return f"Demande retirée{f' ({why})' if why else ''}."
    if by == "referrer":  # its reason is the label of its code when chosen from the list
        return f"Demande retirée : rendez-vous annulé{f' ({why})' if why else ''}."
    if by == "patient":
        return "Rendez-vous annulé par le patient (depuis le lien de son avis)."
    if by == "centre":
        return f"Rendez-vous annulé par le centre ({why})."
    return f"Rendez-vous annulé ({why})."
