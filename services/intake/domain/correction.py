"""A referrer's correction of its referral's patient (``referral.updated``, issue 36):
what changes, and what may not. Plain functions: no broker, no database.

- The identity's name and birth date replace intake's when they differ; the referral
  keeps its pseudonym (``patient_ref``). The pseudonym is derived from the identity at
  submission (``submission.pseudonym``), and regulation, the scheduler and the notifier
  know the referral by it: derived again, it would name another patient downstream (a
  referral whose appointment and history no longer meet). The corrected identity is
  what intake shows and sends; the pseudonym stays a reference, not a copy of it.
- A new commune is the patient's new place (the scheduler may book nearer): a real
  commune, and for a SAMU one of its départements (shared/territory.py), since it
  regulates its own territory's patients only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.events import ReferralUpdated
from shared.geo import commune
from shared.senders import SenderRefused
from shared.territory import OUTSIDE_TERRITORY, Scope


@dataclass(frozen=True, slots=True)
class Kept:
    """The patient as intake keeps them: identity and commune."""

    first_name: str
    last_name: str
    birth_date: date
    commune_insee: str


@dataclass(frozen=True, slots=True)
class Correction:
    """What the update changes: the identity (None: as it was), the commune and its
    département (None: as it was)."""

    identity: tuple[str, str, date] | None
    commune: tuple[str, str] | None

    @property
    def empty(self) -> bool:
        return self.identity is None and self.commune is None


def correction(kept: Kept, update: ReferralUpdated, scope: Scope | None) -> Correction:
    """What ``update`` changes of ``kept``; ``scope``: the SAMU's territory when a SAMU
    sent it (None: a referrer, an operator). Refused (``SenderRefused``) when the new
    commune is unknown, or outside the SAMU's départements."""
    identity = (
        (update.first_name or kept.first_name).strip(),
        (update.last_name or kept.last_name).strip(),
        update.birth_date or kept.birth_date,
    )
    changed_identity = identity != (kept.first_name, kept.last_name, kept.birth_date)
    moved: tuple[str, str] | None = None
    if update.commune_insee is not None and update.commune_insee != kept.commune_insee:
        place = commune(update.commune_insee)
        if place is None:
            raise SenderRefused(
                "unknown_commune", "no commune with this INSEE code", "commune_insee"
            )
        if scope is not None and not scope.covers(place.departement):
            raise SenderRefused(
                OUTSIDE_TERRITORY, "the commune is outside the SAMU's départements", "commune_insee"
            )
        moved = (place.insee, place.departement)
    return Correction(identity if changed_identity else None, moved)
