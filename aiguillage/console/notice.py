"""The words of an appointment, as the referrer's printed notice and the patient's page
say them: the day and time in French, and what to bring."""

from __future__ import annotations

from datetime import datetime

from shared.paris import in_paris

DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
WHAT_TO_BRING = (
    "votre carte Vitale et une pièce d'identité",
    "vos ordonnances et traitements en cours",
    "un masque si vous en avez un (sinon, un masque vous sera remis)",
    "votre propre stylo",
)


def day_and_time(value: str | datetime | None) -> str:
    """``mardi 24 mars 2020 à 16h40``, Paris time (the page says so)."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = in_paris(moment)
    return (
        f"{DAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year} "
        f"à {local.hour}h{local.minute:02d}"
    )
