"""Issue 36, "Updates applied": an RS-EDA-MAJ read as the referral's correction (the
door's mapping), what intake changes of it (names, birth date, a commune within the
SAMU's territory), and the scheduler's rule for a relocated patient (nearer, no later,
not yet due). Pure functions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from aiguillage.hubsante import cases, messages, schema
from services.intake.domain.correction import Kept, correction
from services.scheduler.domain.assignment import Candidate
from services.scheduler.domain.centres import CentreSchedule
from services.scheduler.domain.relocation import closer_centres, due, nearer
from shared.events import ReferralUpdated
from shared.geo import haversine_km
from shared.senders import SenderRefused
from shared.territory import Scope

MAJ = Path("/work/shared/hubsante/examples/RS-EDA-MAJ")
LRM, DOOR = "fr.health.samuA", "fr.health.aiguillage"
REFERRAL = "0b3a2c9e-1111-4222-8333-444455556666"


def test_an_update_with_the_patients_identity_and_commune_is_a_correction() -> None:
    case = json.loads((MAJ / "RS-EDA-MAJ_partageDossier_DidierMorel.02.json").read_text())
    update = case["createCaseHealthUpdate"]
    # RS-EDA-MAJ's location names no city: a BAN address key, the commune's code first.
    update["location"] = {"externalInfo": [{"freetext": "BAN", "uri": "35288_0150_00012"}]}
    assert (
        schema.errors(messages.envelope(LRM, DOOR, "Update", "createCaseHealthUpdate", update))
        == []
    )
    found = cases.correction(update, REFERRAL)
    assert found == ReferralUpdated(
        referral_id=REFERRAL,
        first_name="Germaine",
        last_name="MOREL",
        birth_date=date(1963, 12, 12),
        commune_insee="35288",
    )


@pytest.mark.parametrize(
    "name",
    [
        "RS-EDA-MAJ_FemmeEnceinte_DelphineVigneau.06.json",  # a note
        "RS-EDA-MAJ_FuiteDeGaz_AliceGregoireNormand.07.json",  # two patients, no names
        "RS-EDA-MAJ_partageDossier_MonsieurX.02b.json",  # a decision
    ],
)
def test_an_update_without_patient_details_or_place_corrects_nothing(name: str) -> None:
    case = json.loads((MAJ / name).read_text())
    assert cases.correction(case["createCaseHealthUpdate"], REFERRAL) is None


def test_an_update_naming_several_patients_corrects_only_the_place() -> None:
    person = {"identity": {"nonStrictFeatures": {"firstName": "A", "lastName": "B"}}}
    update = {
        "caseId": "x",
        "patient": [person, person],
        "location": {"city": {"inseeCode": "35238"}},
    }
    assert cases.correction(update, REFERRAL) == ReferralUpdated(
        referral_id=REFERRAL, commune_insee="35238"
    )


def test_a_location_of_another_source_names_no_commune() -> None:
    other = {"externalInfo": [{"freetext": "NEXSIS", "uri": "35288_0150_00012"}]}
    assert cases.correction({"caseId": "x", "location": other}, REFERRAL) is None


def test_an_unreadable_commune_is_refused_by_the_mapping() -> None:
    with pytest.raises(ValueError, match="commune_insee"):
        cases.correction({"caseId": "x", "location": {"city": {"inseeCode": "3523"}}}, REFERRAL)


KEPT = Kept("Jean", "Dupont", date(1980, 5, 1), "35238")
SAMU_35 = Scope("samu-35", frozenset({"35"}))


def test_a_corrected_name_changes_the_identity_not_the_commune() -> None:
    change = correction(KEPT, ReferralUpdated(referral_id=REFERRAL, first_name="Jeanne"), SAMU_35)
    assert change.identity == ("Jeanne", "Dupont", date(1980, 5, 1))
    assert change.commune is None


def test_the_same_values_again_change_nothing() -> None:
    same = ReferralUpdated(
        referral_id=REFERRAL,
        first_name="Jean",
        last_name="Dupont",
        birth_date=date(1980, 5, 1),
        commune_insee="35238",
    )
    assert correction(KEPT, same, SAMU_35).empty


def test_a_new_commune_in_the_samus_territory_relocates() -> None:
    change = correction(KEPT, ReferralUpdated(referral_id=REFERRAL, commune_insee="35288"), SAMU_35)
    assert change.commune == ("35288", "35") and change.identity is None


def test_a_commune_outside_the_samus_territory_is_refused() -> None:
    update = ReferralUpdated(referral_id=REFERRAL, commune_insee="22278")  # Saint-Brieuc
    with pytest.raises(SenderRefused) as refused:
        correction(KEPT, update, SAMU_35)
    assert refused.value.code == "outside_territory"
    # A referrer (no SAMU) is not held to a territory.
    assert correction(KEPT, update, None).commune == ("22278", "22")


def test_an_unknown_commune_is_refused() -> None:
    with pytest.raises(SenderRefused) as refused:
        correction(KEPT, ReferralUpdated(referral_id=REFERRAL, commune_insee="35999"), None)
    assert refused.value.code == "unknown_commune"


NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
HELD = NOW + timedelta(hours=2)


def slot(centre: str, start: datetime, km: float) -> Candidate:
    return Candidate(centre, start, start + timedelta(minutes=20), 0, km, 0.0, 0.0)


def test_only_a_nearer_slot_no_later_is_worth_a_move() -> None:
    ranked = [
        slot("later-nearer", HELD + timedelta(minutes=20), 2.0),
        slot("as-far", HELD - timedelta(hours=1), 30.0),
        slot("farther", HELD - timedelta(hours=1), 45.0),
        slot("nearer", HELD, 3.0),
        slot("nearer-sooner", HELD - timedelta(minutes=40), 5.0),
    ]
    worth = nearer(HELD, 30.0, NOW, ranked)
    assert [c.centre_id for c in worth] == ["nearer", "nearer-sooner"]


def test_an_appointment_due_is_never_moved() -> None:
    ranked = [slot("nearer", HELD, 1.0)]
    assert due(HELD, HELD) and not due(HELD, HELD - timedelta(seconds=1))
    assert nearer(HELD, 30.0, HELD, ranked) == []
    assert nearer(HELD, 30.0, HELD + timedelta(minutes=5), ranked) == []


def test_only_centres_strictly_nearer_are_ranked_for_a_move() -> None:
    def at(centre_id: str, lat: float, lon: float) -> CentreSchedule:
        return CentreSchedule(centre_id, lat, lon, "35", (), 1, 20, NOW.date())

    home = (48.6493, -2.0257)  # Saint-Malo
    rennes, malo = at("rennes", 48.1147, -1.6794), at("malo", *home)
    dinard = at("dinard", 48.6325, -2.0617)
    everyone = [rennes, malo, dinard]

    def held_at(centre: CentreSchedule) -> list[str]:
        km = haversine_km(*home, centre.lat, centre.lon)
        return [c.centre_id for c in closer_centres(everyone, *home, km)]

    # Held in Rennes (about 65 km away): Saint-Malo and Dinard; Rennes itself is no nearer.
    assert held_at(rennes) == ["malo", "dinard"]
    assert held_at(dinard) == ["malo"]  # 3 km: only the centre in Saint-Malo
    assert held_at(malo) == []
