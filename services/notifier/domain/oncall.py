"""The ARS's on-call contacts, per département, and what they are told of an alert:
the contacts as the settings declare them (JSON), whether a beginning is told now (at
most one an hour per département), and the words (French). No I/O here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import CapacityAlert
from shared.geo import departement as departement_of
from shared.labels import ALERT_KINDS

# A département's on-call is told at most one beginning an hour, whatever its cause.
QUIET = timedelta(hours=1)


@dataclass(frozen=True)
class OnCall:
    """One on-call contact: personal data, never logged (``repr`` says nothing)."""

    email: str | None = None
    phone: str | None = None

    def __repr__(self) -> str:
        return "OnCall(…)"


OnCallContacts = Mapping[str, tuple[OnCall, ...]]


def parse_contacts(text: str | None) -> OnCallContacts:
    """``{"35": [{"email": ..., "phone": ...}], ...}``; raises ValueError on anything
    else (naming no contact: the error may be logged)."""
    if not text or not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"on-call contacts: not JSON (line {exc.lineno})") from None
    if not isinstance(document, dict):
        raise ValueError("on-call contacts: an object by département expected")
    contacts: dict[str, tuple[OnCall, ...]] = {}
    for code, entries in document.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"on-call contacts of {code}: a list of objects expected")
        contacts[str(code)] = tuple(
            OnCall(email=e.get("email") or None, phone=e.get("phone") or None) for e in entries
        )
    return contacts


def tell_beginning(last_told: datetime | None, now: datetime) -> bool:
    """Whether an alert that begins now is told (none told in the last hour)."""
    return last_told is None or now - last_told >= QUIET


def recipient(departement: str, index: int) -> str:
    """Who a notification goes to, as its row and its event name them: the
    département's on-call by rank in the settings, never their address."""
    return f"astreinte-{departement}-{index}"


def template(alert: CapacityAlert) -> str:
    return f"oncall.{alert.kind.value}.{'ended' if alert.cleared else 'began'}"


def words(alert: CapacityAlert) -> tuple[str, str]:
    """The subject and the text (short enough for an SMS) of an alert or its end."""
    known = departement_of(alert.departement)
    place = f"{known.name} ({alert.departement})" if known else alert.departement
    cause = ALERT_KINDS[alert.kind]
    if alert.cleared:
        subject = f"Fin d'alerte {cause} : {place}"
        text = f"Aiguillage : fin de l'alerte {cause} en {place}."
    else:
        subject = f"Alerte {cause} : {place}"
        text = (
            f"Aiguillage : alerte {cause} en {place}. Occupation sur 24 h : "
            f"{round(alert.occupancy_next_24h * 100)} % ({alert.booked_next_24h}/"
            f"{alert.capacity_next_24h}), {alert.waiting} patient(s) en attente."
        )
    return subject, text
