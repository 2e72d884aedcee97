"""Message texts, in French, for the people the notifier tells."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from shared.geo import commune

PARIS = ZoneInfo("Europe/Paris")


def local_time(value: datetime) -> str:
    return value.astimezone(PARIS).strftime("%d/%m/%Y à %Hh%M")


def place(name: str, address: str | None, insee: str) -> str:
    town = commune(insee)
    parts = [name, address, town.name if town else None]
    return ", ".join(p for p in parts if p)


# -- centres -------------------------------------------------------------------------


def centre_new_patient(patient_ref: str, start: datetime, priority: str, box: int) -> str:
    return (
        f"Nouveau patient orienté : {patient_ref}, rendez-vous le {local_time(start)} "
        f"(box {box}, priorité {priority})."
    )


def centre_rescheduled(patient_ref: str, start: datetime, previous_centre: str) -> str:
    return (
        f"Patient reporté depuis le centre {previous_centre} : {patient_ref}, "
        f"rendez-vous le {local_time(start)}."
    )


def centre_cancelled(patient_ref: str, start: datetime, reason: str) -> str:
    return f"Rendez-vous annulé : {patient_ref} du {local_time(start)} ({reason})."


# -- patients ------------------------------------------------------------------------

SUBJECT = "Votre rendez-vous de consultation Covid-19"


def patient_appointment(start: datetime, where: str) -> str:
    return (
        f"Bonjour, suite à l'avis de votre médecin, un rendez-vous de consultation vous est "
        f"réservé le {local_time(start)} au {where}. Présentez-vous à l'heure, muni d'un "
        "masque si vous en avez un. En cas d'aggravation (difficulté à respirer, malaise), "
        "appelez le 15."
    )


def patient_rescheduled(start: datetime, where: str) -> str:
    return (
        f"Bonjour, votre rendez-vous de consultation est déplacé au {local_time(start)}, "
        f"{where}. En cas d'aggravation, appelez le 15."
    )


def patient_cancelled(start: datetime) -> str:
    return (
        f"Bonjour, votre rendez-vous du {local_time(start)} est annulé. Vous serez recontacté. "
        "En cas d'aggravation, appelez le 15."
    )


# -- referrers -----------------------------------------------------------------------


def referrer_outcome(status: str, detail: dict[str, object]) -> str:
    when = detail.get("start")
    at = local_time(datetime.fromisoformat(str(when))) if when else ""
    reasons = detail.get("reasons") or ""
    return {
        "appointment": f"Rendez-vous attribué le {at} ({detail.get('centre_name')}).",
        "rescheduled": f"Rendez-vous déplacé au {at} ({detail.get('centre_name')}).",
        "escalated": "Orientation vers le SAMU / les urgences (signes de gravité).",
        "home_follow_up": "Suivi à domicile par le médecin traitant.",
        "refused": f"Demande refusée : {reasons}",
        "held_for_regulator": "En attente de la décision d'un médecin régulateur.",
        "waitlisted": "Aucun créneau disponible : patient en liste d'attente.",
        "cancelled": f"Rendez-vous annulé ({detail.get('reason')}).",
        "no_show": "Le patient ne s'est pas présenté au rendez-vous.",
        "escalated_by_centre": f"Le centre a réadressé le patient au Centre 15 "
        f"({detail.get('reason')}).",
    }.get(status, status)
