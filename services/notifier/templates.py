"""Message texts, in French, for the people the notifier tells."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def local_time(value: datetime) -> str:
    return value.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


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
