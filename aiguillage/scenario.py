"""Demo data: the centres the seeds name, and a realistic mix of referrals."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from aiguillage.hours import parse_hours
from shared.events import (
    CentreActivated,
    CentreKind,
    Clinical,
    PatientIdentity,
    Purpose,
    ReferralSubmitted,
    Referrer,
    ReferrerKind,
    RiskFactor,
    SeveritySign,
    Sex,
    Vitals,
)
from shared.geo import communes_in_departement

# Rennes, 25 March 2020: SOS Médecins (Cleunay), CHU Pontchaillou's maison médicale de
# garde, the école de la Poterie; outside Rennes, two sites at the Centre hospitalier
# privé de Saint-Grégoire. Out-of-hours services keep evening and night hours.
RENNES = [
    (
        "rennes-sos-cleunay",
        "SOS Médecins Rennes (Cleunay)",
        CentreKind.GROUP_PRACTICE,
        "35238",
        "all 00:00-24:00",
        3,
    ),
    (
        "rennes-chu-pontchaillou",
        "Maison médicale de garde, CHU Pontchaillou",
        CentreKind.HOSPITAL_ATTACHED,
        "35238",
        "all 00:00-24:00",
        4,
    ),
    (
        "rennes-ecole-poterie",
        "École de la Poterie",
        CentreKind.TEMPORARY_DEDICATED,
        "35238",
        "all 08:00-20:00",
        4,
    ),
    (
        "st-gregoire-chp-1",
        "CHP Saint-Grégoire, site 1",
        CentreKind.HOSPITAL_ATTACHED,
        "35278",
        "all 08:00-22:00",
        3,
    ),
    (
        "st-gregoire-chp-2",
        "CHP Saint-Grégoire, site 2",
        CentreKind.HOSPITAL_ATTACHED,
        "35278",
        "all 08:00-22:00",
        2,
    ),
]

# A sample of the Île-de-France offer of 29 March 2020 (155 centres in all).
ILE_DE_FRANCE = [
    (
        "paris-15-vaugirard",
        "Centre Covid Paris 15e",
        CentreKind.TEMPORARY_DEDICATED,
        "75115",
        "all 00:00-24:00",
        4,
    ),
    ("paris-20-msp-belleville", "MSP Belleville", CentreKind.MSP, "75120", "all 08:00-20:00", 2),
    (
        "seine-st-denis-st-denis",
        "Centre municipal de Saint-Denis",
        CentreKind.CENTRE_DE_SANTE,
        "93066",
        "all 00:00-24:00",
        3,
    ),
    (
        "hauts-de-seine-nanterre",
        "Centre Covid de Nanterre",
        CentreKind.TEMPORARY_DEDICATED,
        "92050",
        "all 08:00-22:00",
        2,
    ),
    (
        "val-de-marne-creteil",
        "Centre de santé de Créteil",
        CentreKind.CENTRE_DE_SANTE,
        "94028",
        "all 00:00-24:00",
        2,
    ),
]

DEMO_DEPARTEMENTS = {"35": 0.35, "75": 0.3, "93": 0.15, "92": 0.1, "94": 0.1}

FIRST = [
    "Camille",
    "Louise",
    "Léa",
    "Manon",
    "Inès",
    "Jules",
    "Lucas",
    "Hugo",
    "Arthur",
    "Louis",
    "Chloé",
    "Gabriel",
    "Emma",
    "Nathan",
    "Sarah",
    "Yanis",
    "Mathilde",
    "Paul",
]
LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "Le Goff",
]


def demo_centres(today: date) -> list[CentreActivated]:
    return [
        CentreActivated(
            centre_id=cid,
            name=name,
            kind=kind,
            commune_insee=insee,
            opening_hours=parse_hours(hours),
            boxes=boxes,
            consultation_minutes=20,
            first_day=today,
        )
        for cid, name, kind, insee, hours, boxes in RENNES + ILE_DE_FRANCE
    ]


@dataclass(frozen=True)
class Profile:
    name: str
    weight: float


PROFILES = [
    Profile("mild", 0.45),
    Profile("at_risk", 0.15),
    Profile("severe", 0.12),
    Profile("screening", 0.08),
    Profile("asymptomatic", 0.05),
    Profile("child", 0.05),
    Profile("pregnant", 0.05),
    Profile("invalid", 0.05),
]


def _commune(rng: random.Random) -> str:
    dep = rng.choices(list(DEMO_DEPARTEMENTS), weights=list(DEMO_DEPARTEMENTS.values()))[0]
    places = [c for c in communes_in_departement(dep) if c.kind == "ARM" or dep != "75"]
    chosen = rng.choices(places, weights=[c.population for c in places])[0]
    return chosen.insee


def demo_referral(
    rng: random.Random, index: int, today: date
) -> tuple[str, ReferralSubmitted | dict[str, object]]:
    """One referral of the mix; 'invalid' ones are dicts a schema refuses."""
    profile = rng.choices(PROFILES, weights=[p.weight for p in PROFILES])[0].name
    kind = rng.choice(list(ReferrerKind))
    age = rng.randint(18, 68)
    symptomatic = True
    signs: tuple[SeveritySign, ...] = ()
    risks: tuple[RiskFactor, ...] = ()
    vitals = Vitals(
        spo2=rng.choice([95.0, 97.0, 98.0]),
        respiratory_rate=rng.randint(14, 20),
        temperature_c=round(rng.uniform(37.5, 38.8), 1),
    )
    pregnancy, purpose = None, Purpose.CONSULTATION
    if profile == "at_risk":
        age = rng.randint(70, 92) if rng.random() < 0.5 else age
        risks = (rng.choice(list(RiskFactor)),)
    elif profile == "severe":
        signs = (rng.choice(list(SeveritySign)),)
        vitals = Vitals(spo2=87.0, respiratory_rate=26)
    elif profile == "screening":
        symptomatic, purpose = False, Purpose.SCREENING
    elif profile == "asymptomatic":
        symptomatic = False
    elif profile == "child":
        age = rng.randint(2, 14)
    elif profile == "pregnant":
        pregnancy = rng.choice([1, 2, 3])
    birth = today - timedelta(days=age * 365 + rng.randint(1, 300))
    referrer = Referrer(
        kind=kind, identifier=f"{kind.value}-{rng.randint(1, 40):03d}", reply_to="demo"
    )
    reference = f"demo-{index:06d}"
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if profile == "invalid":
        return reference, {
            "referrer": referrer.model_dump(mode="json"),
            "reference": reference,
            "patient": {
                "first_name": first,
                "last_name": last,
                "birth_date": (today + timedelta(days=30)).isoformat(),
                "commune_insee": "99999",
            },
            "clinical": {"symptomatic": True, "vitals": {"spo2": 140}},
        }
    return reference, ReferralSubmitted(
        referrer=referrer,
        reference=reference,
        patient=PatientIdentity(
            first_name=first,
            last_name=last,
            birth_date=birth,
            sex=rng.choice([Sex.FEMALE, Sex.MALE]) if pregnancy is None else Sex.FEMALE,
            # A mainland mobile (06 1x: every 06 is not one, some are Mayotte's or
            # none), from the same draw as before so the scenarios' seeds stay the same.
            phone=f"061{rng.randint(10000000, 99999999) % 10_000_000:07d}",
            email=f"{first.lower()}.{index}@exemple.fr".encode("ascii", "ignore").decode(),
            sms_consent=rng.random() < 0.7,
            commune_insee=_commune(rng),
        ),
        clinical=Clinical(
            symptomatic=symptomatic,
            symptoms=("fever", "cough") if symptomatic else (),
            onset_date=today - timedelta(days=rng.randint(0, 6)) if symptomatic else None,
            severity_signs=signs,
            vitals=vitals,
            risk_factors=risks,
            pregnancy_trimester=pregnancy,
            health_professional=rng.random() < 0.05,
        ),
        purpose=purpose,
    )
