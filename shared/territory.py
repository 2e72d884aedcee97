"""Whose patients each Centre 15 sees and decides on: a SAMU's départements (issue 28).

A Centre 15 is one SAMU (``samu-35``), which regulates its own département's patients:
SAMU 35 covers 35. A deployment widens (or narrows) a SAMU's départements with
``AIGUILLAGE_SAMU_DEPARTEMENTS`` (``samu-75=75,92``: SAMU 75 also regulates the
Hauts-de-Seine); every other ``samu-<département>`` keeps its own. A referral's
département is its patient's commune's (the INSEE code's département, which intake and
regulation both store with the referral).

Deny by default: a Centre 15 named by no known SAMU covers nothing. The national Centre
15 (token subject ``national``, broker user ``centre_15``) covers every département,
only where the deployment enables it (``AIGUILLAGE_CENTRE_15_NATIONAL``); each use of it
is logged, with who.

A token names its SAMU first: ``samu-35`` (the SAMU itself: an operator's command, a
regulation software) or ``samu-35:<login>`` (a regulator of SAMU 35, whose login the
decisions record: the console's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from shared.auth import Principal, Role, forbid
from shared.geo import departement

log = structlog.get_logger(__name__)

SAMU_PREFIX = "samu-"
# The national Centre 15: its tokens' subject, and its broker user's actor.
NATIONAL = "national"
NATIONAL_ACTOR = "centre_15"
# The stable code of a refusal for a referral outside the SAMU's départements.
OUTSIDE_TERRITORY = "outside_territory"

_SAMU = re.compile(r"^samu-[A-Za-z0-9_-]{1,59}$")


class TerritoryError(ValueError):
    """A setting of SAMUs' départements that cannot be read (said in French)."""


def parse_samu_departements(text: str) -> dict[str, frozenset[str]]:
    """``samu-75=75,92; samu-13=13,04`` as {SAMU: its départements}; each SAMU named
    once, each département a real one."""
    found: dict[str, frozenset[str]] = {}
    for part in re.split(r"[;\s]+", text.strip()):
        if not part:
            continue
        samu, equals, listed = part.partition("=")
        codes = frozenset(c.strip() for c in listed.split(",") if c.strip())
        if not equals or not _SAMU.match(samu) or not codes:
            raise TerritoryError(f"« {part} » : attendu samu-<nom>=<département>,<département>…")
        if samu in found:
            raise TerritoryError(f"{samu} est nommé deux fois")
        unknown = sorted(c for c in codes if departement(c) is None)
        if unknown:
            raise TerritoryError(f"{samu} : département inconnu {', '.join(unknown)}")
        found[samu] = codes
    return found


@dataclass(frozen=True)
class Scope:
    """What one Centre 15 covers: its départements, or all of them (national)."""

    samu: str
    departements: frozenset[str]
    national: bool = False

    def covers(self, code: str | None) -> bool:
        return self.national or (code is not None and code in self.departements)


@dataclass(frozen=True)
class Territories:
    """The deployment's SAMUs: who covers which départements."""

    # (SAMU, its départements) as the setting gives them: a tuple, so that it hashes.
    widened: tuple[tuple[str, frozenset[str]], ...] = ()
    national: bool = False

    @classmethod
    def of(cls, settings: object) -> Territories:
        """From the settings (``samu_departements``, ``centre_15_national``)."""
        text = str(getattr(settings, "samu_departements", "") or "")
        return cls(
            tuple(sorted(parse_samu_departements(text).items())),
            bool(getattr(settings, "centre_15_national", False)),
        )

    @property
    def by_samu(self) -> Mapping[str, frozenset[str]]:
        return dict(self.widened)

    def departements(self, samu: str) -> frozenset[str] | None:
        """The départements ``samu`` covers; None when it is no known SAMU."""
        named = self.by_samu.get(samu)
        if named is not None:
            return named
        code = samu.removeprefix(SAMU_PREFIX)
        if samu.startswith(SAMU_PREFIX) and departement(code) is not None:
            return frozenset({code})
        return None

    def samus_covering(self, code: str) -> tuple[str, ...]:
        """Every SAMU that covers the département ``code``, sorted: those the setting
        widens to it, and ``samu-<code>`` unless the setting gives it other départements
        (``samu-75=75,92``: the 92 is SAMU 75's and SAMU 92's)."""
        candidates = {*self.by_samu, f"{SAMU_PREFIX}{code}"}
        return tuple(sorted(s for s in candidates if code in (self.departements(s) or ())))

    def scope(self, centre_15: str) -> Scope | None:
        """What the Centre 15 named so covers (a token's SAMU, a broker user's actor);
        None when it covers nothing: refused."""
        if centre_15 == NATIONAL:
            return Scope(NATIONAL, frozenset(), national=True) if self.national else None
        codes = self.departements(centre_15)
        return None if codes is None else Scope(centre_15, codes)


def samu_and_regulator(subject: str) -> tuple[str, str]:
    """A Centre 15 token's subject as (its SAMU, the regulator it records):
    ``samu-35:r.le-gall@samu35.fr`` is a regulator of SAMU 35, ``samu-35`` the SAMU."""
    samu, _, person = subject.partition(":")
    return samu, person or samu


def centre_15_scope(territories: Territories, caller: Principal) -> Scope:
    """The territory of a Centre 15 caller; 403 for another role, or a subject that is
    no known SAMU (nor the national Centre 15 where it is enabled)."""
    if caller.role is not Role.CENTRE_15:
        raise forbid("only Centre 15 reads and decides on its territory's referrals")
    samu, _ = samu_and_regulator(caller.subject)
    scope = territories.scope(samu)
    if scope is None:
        raise forbid(
            f"« {samu} » n'est pas un SAMU connu de ce déploiement : "
            "le jeton doit nommer un SAMU (samu-<département>)."
        )
    if scope.national:
        # The one role that reads every département: each use leaves a trace.
        log.warning("national centre 15 access", reader=caller.subject)
    return scope


class OutsideTerritory(Exception):
    """A SAMU acting on a referral outside its départements: answered 403
    ``{"detail": <French>, "error_code": "outside_territory"}`` (shared.runtime)."""

    def __init__(self, scope: Scope) -> None:
        listed = ", ".join(sorted(scope.departements))
        # Says whose territory it is not, never where the patient lives.
        super().__init__(
            f"Ce dossier ne relève pas du territoire de {scope.samu} (département(s) "
            f"{listed}) : vous ne pouvez pas décider pour lui."
        )
        self.code = OUTSIDE_TERRITORY
