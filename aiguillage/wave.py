"""The demo's scenarios: an offer of centres, a wave of referrals, and the ARS's answer.

Pure logic, no I/O (unit-tested): which centres exist and which open first, how many
referrals each simulated day brings and from where, and the rule by which the scenario's
ARS opens or ramps up centres when the scheduler raises alerts. ``aiguillage.wave_run``
plays it on the real services.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from aiguillage.hours import parse_hours
from aiguillage.scenario import RENNES, demo_referral
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreKind,
    EventPayload,
    ReferralSubmitted,
    Vitals,
)
from shared.geo import Commune, commune, communes_in_departement, haversine_km

# ARS Île-de-France, 29 March 2020 (seeds/000_def7b65c701ba754.txt): the centres per
# département. 155 in all: about 40 created for the epidemic, 17 of them open that day;
# the others are existing structures reorganising to take Covid-19 patients apart.
IDF_2020_03_29 = {
    "75": 84,
    "77": 3,
    "78": 9,
    "91": 6,
    "92": 10,
    "93": 20,
    "94": 10,
    "95": 13,
}
IDF_DEDICATED = 40
IDF_OPEN_ON_29_MARCH = 17
EXISTING_KINDS = (CentreKind.MSP, CentreKind.CENTRE_DE_SANTE, CentreKind.GROUP_PRACTICE)
# Existing structures keep their usual work: a few dedicated hours a day, one box.
EXISTING_HOURS = "all 14:00-18:00"
DEDICATED_HOURS = "all 09:00-13:00"
# The first centres open small and slow (one box, long consultations, while the teams
# learn the protocol): the wave outgrows them within a few days.
FIRST_MINUTES = 30
# Referrals of patients at risk that come without vitals (held for a regulator).
HELD_SHARE = 0.15
# A ramped-up centre never goes beyond this many boxes.
MAX_BOXES = 6


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    centres: tuple[CentreActivated, ...]
    initially_open: frozenset[str]
    # Where patients come from: communes and their weights (population).
    communes: tuple[str, ...]
    weights: tuple[float, ...]
    days: int = 5
    first_day_referrals: int = 30
    growth: float = 1.8

    @property
    def reserve(self) -> tuple[CentreActivated, ...]:
        return tuple(c for c in self.centres if c.centre_id not in self.initially_open)

    def first_centres(self) -> list[CentreActivated]:
        return [c for c in self.centres if c.centre_id in self.initially_open]


def counts_per_departement(scenario: Scenario) -> dict[str, int]:
    counts: dict[str, int] = {}
    for centre in scenario.centres:
        dep = departement_of(centre.commune_insee)
        counts[dep] = counts.get(dep, 0) + 1
    return counts


def departement_of(insee: str) -> str:
    found = commune(insee)
    return found.departement if found else insee[:2]


def daily_referrals(days: int, first: int, growth: float) -> list[int]:
    """Referrals of each simulated day: an epidemic wave, growing geometrically."""
    return [max(1, round(first * growth**day)) for day in range(days)]


def largest_remainder(total: int, shares: dict[str, int], minimum: int = 0) -> dict[str, int]:
    """``total`` split in proportion to ``shares``, whole numbers that add up to it."""
    base = {k: minimum for k in shares}
    left = total - minimum * len(shares)
    weight = sum(shares.values())
    exact = {k: left * v / weight for k, v in shares.items()}
    for k, v in exact.items():
        base[k] += math.floor(v)
    rest = total - sum(base.values())
    for k in sorted(exact, key=lambda k: (exact[k] - math.floor(exact[k]), k), reverse=True)[:rest]:
        base[k] += 1
    return base


def _places(dep: str) -> list[Commune]:
    # Paris is counted by arrondissement (ARM), as patients give them.
    found = communes_in_departement(dep)
    arrondissements = [c for c in found if c.kind == "ARM"]
    return arrondissements or [c for c in found if c.kind != "ARM"]


def _populous(dep: str, count: int) -> list[Commune]:
    """``count`` sites, cycling through the most populous communes (big ones get several)."""
    places = sorted(_places(dep), key=lambda c: (-c.population, c.insee))
    pool = places[: max(count, 1)] if dep == "75" else places[: max(3, count // 2 + 1)]
    return [pool[i % len(pool)] for i in range(count)]


def idf_2020_03(today: date) -> Scenario:
    """The Île-de-France offer of 29 March 2020, placed in the populous communes."""
    dedicated = largest_remainder(IDF_DEDICATED, IDF_2020_03_29, minimum=1)
    opened = largest_remainder(IDF_OPEN_ON_29_MARCH, dedicated, minimum=1)
    centres: list[CentreActivated] = []
    first: set[str] = set()
    for dep, count in IDF_2020_03_29.items():
        for i, place in enumerate(_populous(dep, count)):
            is_dedicated = i < dedicated[dep]
            kind = (
                (CentreKind.TEMPORARY_DEDICATED if i % 3 else CentreKind.HOSPITAL_ATTACHED)
                if is_dedicated
                else EXISTING_KINDS[i % len(EXISTING_KINDS)]
            )
            centre_id = f"idf-{dep}-{i + 1:03d}"
            label = {
                CentreKind.TEMPORARY_DEDICATED: "Centre Covid",
                CentreKind.HOSPITAL_ATTACHED: "Centre Covid adossé à l'hôpital",
                CentreKind.MSP: "MSP",
                CentreKind.CENTRE_DE_SANTE: "Centre de santé",
                CentreKind.GROUP_PRACTICE: "Cabinet de groupe",
            }[kind]
            opens_first = is_dedicated and i < opened[dep]
            centres.append(
                CentreActivated(
                    centre_id=centre_id,
                    name=f"{label} {place.name} n° {i + 1}",
                    kind=kind,
                    commune_insee=place.insee,
                    opening_hours=parse_hours(DEDICATED_HOURS if is_dedicated else EXISTING_HOURS),
                    boxes=1 if opens_first or not is_dedicated else 2,
                    consultation_minutes=FIRST_MINUTES if opens_first else 20,
                    first_day=today,
                )
            )
            if opens_first:
                first.add(centre_id)
    origins = _origins(centres, IDF_2020_03_29)
    return Scenario(
        name="idf-2020-03",
        title="Île-de-France, 29 mars 2020",
        centres=tuple(centres),
        initially_open=frozenset(first),
        communes=tuple(c.insee for c in origins),
        weights=tuple(float(c.population) for c in origins),
    )


def rennes(today: date) -> Scenario:
    """Rennes, 25 March 2020: the three Rennes sites first, Saint-Grégoire in reserve."""
    centres = tuple(
        CentreActivated(
            centre_id=cid,
            name=name,
            kind=kind,
            commune_insee=insee,
            opening_hours=parse_hours(hours),
            boxes=1 if insee == "35238" else boxes,
            consultation_minutes=FIRST_MINUTES if insee == "35238" else 20,
            first_day=today,
        )
        for cid, name, kind, insee, hours, boxes in RENNES
    )
    origins = _origins(centres, {"35": 1}, within_km=25.0)
    return Scenario(
        name="rennes",
        title="Rennes, 25 mars 2020",
        centres=centres,
        initially_open=frozenset(c.centre_id for c in centres if c.commune_insee == "35238"),
        communes=tuple(c.insee for c in origins),
        weights=tuple(float(c.population) for c in origins),
        first_day_referrals=24,
        growth=1.7,
    )


def _origins(
    centres: Iterable[CentreActivated], departements: dict[str, int], within_km: float = 20.0
) -> list[Commune]:
    """Patients' communes: those of the départements within reach of some centre, so
    that every patient can be served once the ARS has opened enough."""
    sites = [c for c in (commune(x.commune_insee) for x in centres) if c is not None]
    return [
        place
        for dep in departements
        for place in _places(dep)
        if any(haversine_km(place.lat, place.lon, s.lat, s.lon) <= within_km for s in sites)
    ]


SCENARIOS = {"idf-2020-03": idf_2020_03, "rennes": rennes}


def wave_referral(
    scenario: Scenario, rng: random.Random, index: int, today: date
) -> tuple[str, ReferralSubmitted | dict[str, object]]:
    """One referral of the demo's mix, from a commune of the scenario."""
    reference, referral = demo_referral(rng, index, today)
    if not isinstance(referral, ReferralSubmitted):
        return reference, referral
    insee = rng.choices(scenario.communes, weights=scenario.weights)[0]
    patient = referral.patient.model_copy(update={"commune_insee": insee})
    clinical = referral.clinical
    if clinical.risk_factors and rng.random() < HELD_SHARE:
        # A GP's referral of a patient at risk, sent before the vitals were taken: the
        # protocol holds it for a Centre 15 regulator.
        vitals = Vitals(temperature_c=clinical.vitals.temperature_c if clinical.vitals else None)
        clinical = clinical.model_copy(update={"vitals": vitals, "severity_signs": ()})
    return reference, referral.model_copy(update={"patient": patient, "clinical": clinical})


@dataclass
class ArsPolicy:
    """The scenario's ARS: on an alert, open reserve centres of the département, or
    ramp up the smallest open one near it when none is left.

    At most one decision per département per ``cooldown`` (the scheduler repeats its
    alerts while patients wait): the new capacity needs a moment to serve them.
    """

    reserve: list[CentreActivated]
    open_centres: dict[str, CentreActivated]
    cooldown: float
    # Patients one more centre is counted to take per decision.
    patients_per_centre: int = 8
    max_per_decision: int = 4
    last_decision: dict[str, float] = field(default_factory=dict)
    boxes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_scenario(cls, scenario: Scenario, cooldown: float) -> ArsPolicy:
        first = scenario.first_centres()
        return cls(
            reserve=list(scenario.reserve),
            open_centres={c.centre_id: c for c in first},
            cooldown=cooldown,
            boxes={c.centre_id: c.boxes for c in first},
        )

    def on_alert(self, departement: str, waiting: int, now: float) -> list[EventPayload]:
        last = self.last_decision.get(departement)
        if last is not None and now - last < self.cooldown:
            return []
        wanted = max(1, min(self.max_per_decision, math.ceil(waiting / self.patients_per_centre)))
        chosen = [c for c in self.reserve if departement_of(c.commune_insee) == departement]
        decisions: list[EventPayload] = []
        for centre in chosen[:wanted]:
            self.reserve.remove(centre)
            self.open_centres[centre.centre_id] = centre
            self.boxes[centre.centre_id] = centre.boxes
            decisions.append(centre)
        if not decisions:
            ramp = self._to_ramp_up(departement)
            if ramp is not None:
                self.boxes[ramp.centre_id] += 1
                decisions.append(
                    CentreCapacityChanged(
                        centre_id=ramp.centre_id,
                        boxes=self.boxes[ramp.centre_id],
                        consultation_minutes=20,
                        from_date=ramp.first_day,
                    )
                )
        if decisions:
            self.last_decision[departement] = now
        return decisions

    def _to_ramp_up(self, departement: str) -> CentreActivated | None:
        """The open centre of the département (else the nearest) with the fewest boxes."""
        candidates: Sequence[CentreActivated] = [
            c
            for c in self.open_centres.values()
            if self.boxes[c.centre_id] < MAX_BOXES
            and departement_of(c.commune_insee) == departement
        ]
        if not candidates:
            places = [c for c in _places(departement) if c.population]
            if not places:
                return None
            heart = max(places, key=lambda c: c.population)
            open_ = [c for c in self.open_centres.values() if self.boxes[c.centre_id] < MAX_BOXES]
            located = [(c, commune(c.commune_insee)) for c in open_]
            near = sorted(
                (haversine_km(heart.lat, heart.lon, p.lat, p.lon), c.centre_id, c)
                for c, p in located
                if p is not None
            )
            candidates = [c for _, _, c in near[:3]]
        if not candidates:
            return None
        return min(candidates, key=lambda c: (self.boxes[c.centre_id], c.centre_id))
