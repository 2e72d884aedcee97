"""Whose centres each ARS decides on and reads: its region's (issue 28).

An ARS is one region, named by its INSEE code (``53`` Bretagne, ``11`` Île-de-France):
its bearer token's subject, its broker user ``ars-<region>`` (``ars-53``), a console
account's region. It activates, ramps up or down, suspends and closes the centres of its
region's départements only, and reads only them (``GET /territory``, ``/territory/<dép.>``,
``/reinforcements``). Deny by default: a token or a user that names no region acts on
nothing.

A centre's region is the one of the département the scheduler **stored** at its first
activation, never what a message says of it. A centre id keeps that département for
life: an activation of an existing id in another département is refused, whoever sends
it (``centre_in_other_region``, or ``centre_in_other_departement`` within the region:
the département is what the waiting lists, the alerts and the SAMUs' territories are
counted by, and another site is another centre, under an id of its own). A commune of
another region is ``outside_territory`` for an ARS, as is any decision on another
region's centre.

The broker's operators (``AIGUILLAGE_BROKER_OPERATORS``) are the one national path: they
act on every region's centres, each decision logged with the operator's user.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from shared.auth import Principal, Role, forbid
from shared.events import CentreActivated, EventPayload
from shared.geo import commune, departement, departements
from shared.territory import OUTSIDE_TERRITORY, OutsideTerritory

ARS_PREFIX = "ars-"
CENTRE_IN_OTHER_REGION = "centre_in_other_region"
CENTRE_IN_OTHER_DEPARTEMENT = "centre_in_other_departement"


@cache
def regions() -> dict[str, str]:
    """Every region: its INSEE code and its name."""
    return {d.region_code: d.region_name for d in departements()}


@cache
def region_departements(region: str) -> frozenset[str]:
    """The départements of a region (none for a code that names no region)."""
    return frozenset(d.code for d in departements() if d.region_code == region)


def region_of(code: str | None) -> str | None:
    """The region of a département; None for none."""
    found = departement(code) if code else None
    return found.region_code if found else None


def ars_actor(region: str) -> str:
    """An ARS as the broker and the doors name it: ``ars-53``."""
    return f"{ARS_PREFIX}{region}"


def region_of_actor(name: str) -> str | None:
    """The region an ARS actor (``ars-53``) names; None when it names none."""
    region = name.removeprefix(ARS_PREFIX)
    return region if name.startswith(ARS_PREFIX) and region in regions() else None


@dataclass(frozen=True)
class Region:
    """One ARS's territory: its region and the région's départements."""

    code: str

    @property
    def name(self) -> str:
        return regions()[self.code]

    @property
    def departements(self) -> frozenset[str]:
        return region_departements(self.code)

    def covers(self, code: str | None) -> bool:
        return code is not None and code in self.departements


def ars_region(caller: Principal) -> Region:
    """The region of an ARS caller; 403 for another role, or a subject that names no
    region (an ARS token's subject is its region's code)."""
    if caller.role is not Role.ARS:
        raise forbid("the territory is the ARS's view")
    if caller.subject not in regions():
        raise forbid(
            f"« {caller.subject} » n'est pas une région : le jeton d'une ARS nomme le code "
            "de sa région (53 pour la Bretagne, 11 pour l'Île-de-France)."
        )
    return Region(caller.subject)


class CentreDecisionRefused(OutsideTerritory):
    """A decision on a centre that its sender may not take; answered 403
    ``{"detail": <French>, "error_code": <code>}`` over HTTP (the runtime's handler of
    OutsideTerritory), ``request.refused`` with the code on the broker. The words name
    no value of the message (the door's refusals are logged and recorded)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        Exception.__init__(self, message)
        self.code = code
        self.field = field


def judge_centre_decision(
    region: Region | None, stored_departement: str | None, payload: EventPayload
) -> None:
    """Raises CentreDecisionRefused unless the decision may apply. ``region``: the ARS
    that sends it (None: an operator, every region); ``stored_departement``: the
    centre's as the scheduler stored it (None: no such centre yet)."""
    if isinstance(payload, CentreActivated):
        place = commune(payload.commune_insee)
        # An unknown commune is the activation's own fault, refused as before.
        target = place.departement if place is not None else None
        if region is not None and target is not None and not region.covers(target):
            raise CentreDecisionRefused(
                OUTSIDE_TERRITORY,
                f"La commune n'est pas dans votre région ({region.name}) : vous ne pouvez "
                "pas y activer de centre.",
                "commune_insee",
            )
        if stored_departement is not None and target is not None:
            _keeps_its_place(stored_departement, target)
    if region is not None and stored_departement is not None:
        _in_region(region, stored_departement)


def judge_reinforcement_answer(region: Region | None, stored_departement: str | None) -> None:
    """Raises CentreDecisionRefused unless the ARS (None: an operator) may answer a request
    for reinforcement of a centre stored in ``stored_departement`` (None: no such
    request): its region's centres only, as for its decisions about centres."""
    if stored_departement is None:
        raise CentreDecisionRefused(
            "unknown_request",
            "Aucune demande de renfort de ce centre ne porte cet identifiant.",
            "request_id",
        )
    if region is not None and not region.covers(stored_departement):
        raise CentreDecisionRefused(
            OUTSIDE_TERRITORY,
            f"Ce centre n'est pas un centre de votre région ({region.name}) : vous ne "
            "pouvez pas répondre à ses demandes de renfort.",
            "centre_id",
        )


def _in_region(region: Region, stored: str) -> None:
    """A centre of another region, as stored, is not the ARS's to decide on."""
    if not region.covers(stored):
        raise CentreDecisionRefused(
            OUTSIDE_TERRITORY,
            f"Ce centre n'est pas un centre de votre région ({region.name}) : vous ne "
            "pouvez ni l'activer, ni changer sa capacité, ni le suspendre, ni le fermer.",
            "centre_id",
        )


def _keeps_its_place(stored: str, target: str) -> None:
    """A centre id stays in the département of its first activation."""
    if target == stored:
        return
    if region_of(target) != region_of(stored):
        raise CentreDecisionRefused(
            CENTRE_IN_OTHER_REGION,
            "Cet identifiant est celui d'un centre d'une autre région : un centre reste "
            "dans sa région. Activez ce site sous un autre identifiant.",
            "centre_id",
        )
    raise CentreDecisionRefused(
        CENTRE_IN_OTHER_DEPARTEMENT,
        "Ce centre est dans un autre département : une nouvelle activation ne le déplace "
        "pas. Activez ce site sous un autre identifiant.",
        "centre_id",
    )
