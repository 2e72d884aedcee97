"""The demo's scenarios without I/O: the offer of the seeds, the wave, the ARS's rule;
and the console's pure parts (who a person acts as, which event touches what)."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, date, datetime

from aiguillage.console.auth import Actor, actor_of_account
from aiguillage.console.live import BINDINGS, EventHub, classify, departements_of
from aiguillage.console.people import Account
from aiguillage.wave import (
    IDF_2020_03_29,
    ArsPolicy,
    counts_per_departement,
    daily_referrals,
    departement_of,
    idf_2020_03,
    largest_remainder,
    rennes,
    wave_referral,
)
from shared.auth import Role
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreKind,
    Envelope,
    ReferralSubmitted,
    ReinforcementRaisedAgain,
)
from shared.labels import REINFORCEMENT_RAISED_AGAIN

DAY = date(2020, 3, 29)


def test_the_idf_offer_has_the_seeds_counts_per_departement() -> None:
    scenario = idf_2020_03(DAY)
    assert counts_per_departement(scenario) == IDF_2020_03_29
    assert len(scenario.centres) == 155
    assert sum(IDF_2020_03_29.values()) == 155
    dedicated = [
        c
        for c in scenario.centres
        if c.kind in (CentreKind.TEMPORARY_DEDICATED, CentreKind.HOSPITAL_ATTACHED)
    ]
    assert len(dedicated) == 40  # "près de 40"; the other 115 are existing structures
    assert len(scenario.initially_open) == 17  # "17 sont déjà ouverts"
    assert all(c.centre_id in {d.centre_id for d in dedicated} for c in scenario.first_centres())
    # Every département has at least one centre open from the start.
    opened = {departement_of(c.commune_insee) for c in scenario.first_centres()}
    assert opened == set(IDF_2020_03_29)
    assert len({c.centre_id for c in scenario.centres}) == 155


def test_idf_centres_sit_in_populous_communes_of_their_departement() -> None:
    scenario = idf_2020_03(DAY)
    paris = [c for c in scenario.centres if departement_of(c.commune_insee) == "75"]
    assert all(c.commune_insee.startswith("751") for c in paris)  # arrondissements
    # Patients come from the eight départements, weighted by population.
    assert {departement_of(i) for i in scenario.communes} == set(IDF_2020_03_29)
    assert all(w > 0 for w in scenario.weights)


def test_rennes_opens_the_three_rennes_sites_and_keeps_saint_gregoire_in_reserve() -> None:
    scenario = rennes(DAY)
    assert scenario.initially_open == {
        "rennes-sos-cleunay",
        "rennes-chu-pontchaillou",
        "rennes-ecole-poterie",
    }
    assert {c.centre_id for c in scenario.reserve} == {"st-gregoire-chp-1", "st-gregoire-chp-2"}
    assert {departement_of(i) for i in scenario.communes} == {"35"}


def test_the_wave_grows_every_day() -> None:
    counts = daily_referrals(5, 30, 1.6)
    assert counts == [30, 48, 77, 123, 197]
    assert all(b > a for a, b in itertools.pairwise(counts))


def test_largest_remainder_adds_up_and_respects_the_minimum() -> None:
    split = largest_remainder(17, {"a": 84, "b": 3, "c": 20}, minimum=1)
    assert sum(split.values()) == 17
    assert min(split.values()) >= 1
    assert split["a"] > split["c"] > split["b"] or split["b"] == 1


def test_wave_referrals_come_from_the_scenarios_communes() -> None:
    scenario = rennes(DAY)
    rng = random.Random(7)
    allowed = set(scenario.communes)
    held = 0
    for i in range(300):
        _, referral = wave_referral(scenario, rng, i, DAY)
        if isinstance(referral, ReferralSubmitted):
            assert referral.patient.commune_insee in allowed
            vitals = referral.clinical.vitals
            held += bool(referral.clinical.risk_factors and vitals and vitals.spo2 is None)
    # A few patients at risk come without vitals: Centre 15 has cases to decide.
    assert 0 < held < 30


def test_the_ars_opens_reserve_centres_of_the_alerting_departement() -> None:
    policy = ArsPolicy.for_scenario(idf_2020_03(DAY), cooldown=10.0)
    decisions = policy.on_alert("93", waiting=20, now=100.0)
    assert decisions and all(isinstance(d, CentreActivated) for d in decisions)
    assert len(decisions) == 3  # ceil(20 waiting / 8 per centre)
    assert all(departement_of(d.commune_insee) == "93" for d in decisions)  # type: ignore[attr-defined]
    # The scheduler repeats its alert: no second decision before the cooldown.
    assert policy.on_alert("93", waiting=20, now=105.0) == []
    # Another département is decided on its own.
    assert policy.on_alert("94", waiting=1, now=105.0)
    again = policy.on_alert("93", waiting=100, now=111.0)
    assert len(again) == policy.max_per_decision
    opened = {d.centre_id for d in decisions + again}  # type: ignore[attr-defined]
    assert not opened & {c.centre_id for c in policy.reserve}


def test_the_ars_ramps_up_when_no_reserve_is_left() -> None:
    policy = ArsPolicy.for_scenario(rennes(DAY), cooldown=0.0)
    first = policy.on_alert("35", waiting=30, now=0.0)
    assert {d.centre_id for d in first} == {"st-gregoire-chp-1", "st-gregoire-chp-2"}  # type: ignore[attr-defined]
    ramp = policy.on_alert("35", waiting=30, now=1.0)
    assert len(ramp) == 1 and isinstance(ramp[0], CentreCapacityChanged)
    # The smallest centre (one box) gets a second one.
    assert ramp[0].boxes == 2
    boxes = []
    for t in range(2, 40):
        for decision in policy.on_alert("35", waiting=30, now=float(t)):
            assert isinstance(decision, CentreCapacityChanged)
            boxes.append(decision.boxes)
    assert boxes and max(b or 0 for b in boxes) <= 6  # never beyond MAX_BOXES


def test_an_alert_where_no_centre_is_planned_ramps_up_the_nearest_open_one() -> None:
    policy = ArsPolicy.for_scenario(rennes(DAY), cooldown=0.0)
    policy.reserve.clear()
    decisions = policy.on_alert("56", waiting=3, now=0.0)  # Morbihan: nothing planned
    assert len(decisions) == 1 and isinstance(decisions[0], CentreCapacityChanged)
    assert decisions[0].centre_id in policy.open_centres


def _person(role: Role, actor: str, login: str = "a.martin@ars.fr") -> Account:
    now = datetime(2020, 3, 29, tzinfo=UTC)
    return Account(1, login, "A. Martin", role, actor, False, now, now)


def test_a_person_acts_for_their_actor_and_a_regulator_in_their_own_name() -> None:
    ars = actor_of_account(_person(Role.ARS, "11"))
    assert (ars.role, ars.subject, ars.source) == (Role.ARS, "11", "console:a.martin@ars.fr")
    assert ars.label == "A. Martin — ARS région 11"
    centre = actor_of_account(_person(Role.CENTRE, "rennes-a", "c.durand@chu.fr"))
    assert centre.subject == "rennes-a"
    # The token's subject names the SAMU (its territory), then the person: regulation
    # takes regulator_id from it.
    regulator = actor_of_account(_person(Role.CENTRE_15, "samu-35", "r.le-gall@samu35.fr"))
    assert regulator.subject == "samu-35:r.le-gall@samu35.fr" and regulator.acts_for == "samu-35"
    assert _person(Role.CENTRE_15, "samu-35").region == "53"


def _envelope(event_type: str, **data: object) -> Envelope:
    return Envelope(
        type=event_type,
        source="test",
        correlation_id="c",
        time=datetime(2020, 3, 29, tzinfo=UTC),
        data=data,
    )


def test_a_centre_hears_of_its_own_patients_only() -> None:
    change = classify(_envelope("slot.assigned", centre_id="rennes-a"))
    assert change is not None
    assert change.concerns(Actor(Role.CENTRE, "rennes-a"))
    assert not change.concerns(Actor(Role.CENTRE, "paris-b"))
    assert change.concerns(Actor(Role.ARS, "idf"))


def test_centre_15_hears_of_escalations_and_held_cases() -> None:
    regulator = Actor(Role.CENTRE_15, "regulateur")
    escalated = classify(_envelope("referral.regulated", decision="escalate", age=70))
    held = classify(_envelope("referral.regulated", decision="hold", decided_by="protocol"))
    routine = classify(_envelope("referral.regulated", decision="orient", decided_by="protocol"))
    assert escalated is not None and escalated.concerns(regulator)
    assert held is not None and held.concerns(regulator)
    assert routine is None
    alert = classify(_envelope("capacity.alert", departement="93", kind="saturation"))
    assert alert is not None and not alert.concerns(regulator)
    assert alert.concerns(Actor(Role.ARS, "idf"))


def test_the_ars_hears_of_a_request_raised_again_in_its_region_only() -> None:
    """A request left unanswered, raised again (reinforcement.raised_again): a line of
    the ARS's journal in the labels' words, judged on its département; the console's
    queue is bound to its key."""
    again = ReinforcementRaisedAgain(
        request_id="r-1",
        centre_id="rennes-a",
        departement="35",
        count=2,
        profession="infirmiers",
        requested_at=datetime(2020, 3, 29, 8, tzinfo=UTC),
    )
    key = again.routing_key()
    assert f"{key.rsplit('.', 1)[0]}.*" in BINDINGS
    envelope = _envelope(again.event_type, **again.model_dump(mode="json"))
    found = classify(envelope)
    assert found is not None
    # As the hub places it (EventHub.feed): on its département, whatever the centre.
    assert departements_of(envelope, {}) == ("35", None)
    change = replace(found, departement="35")
    assert change.line == (
        f"Demande de renfort de rennes-a (2 infirmiers) {REINFORCEMENT_RAISED_AGAIN}"
    )
    bretagne = Actor(Role.ARS, "53", "b.morvan@ars.bzh", "B. Morvan", "53")
    idf = Actor(Role.ARS, "11", "a.martin@ars.fr", "A. Martin", "11")
    hub = EventHub("amqp://unused", "test")
    told = hub.told(change, bretagne)
    assert told is not None and "Demande de renfort de rennes-a" in told
    assert hub.told(change, idf) is None  # not even that it happened
    assert not change.concerns(Actor(Role.CENTRE_15, "regulateur"))
    assert not change.concerns(Actor(Role.CENTRE, "rennes-a"))
