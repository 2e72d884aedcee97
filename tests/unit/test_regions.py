"""An ARS's territory (issue 28, shared/regions.py): its region's centres, judged on the
centre as stored; a centre keeps its département for life; who the broker says an ARS
is (shared/senders.py)."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi import HTTPException

from shared.auth import Principal, Role
from shared.events import CentreCapacityChanged, CentreClosed, CentreSuspended, EventPayload
from shared.regions import (
    CENTRE_IN_OTHER_DEPARTEMENT,
    CENTRE_IN_OTHER_REGION,
    CentreDecisionRefused,
    Region,
    ars_region,
    judge_centre_decision,
    region_of,
    region_of_actor,
)
from shared.senders import ActorKind, SenderPolicy, SenderRefused
from shared.territory import OUTSIDE_TERRITORY
from tests.helpers import centre

BRETAGNE, IDF = Region("53"), Region("11")
RENNES, BREST, PARIS = "35238", "29019", "75056"


def refusal(region: Region | None, stored: str | None, payload: EventPayload) -> str | None:
    try:
        judge_centre_decision(region, stored, payload)
    except CentreDecisionRefused as refused:
        # Said in French, for the person and the sender, naming the field at fault.
        return f"{refused.code}" if refused.field and str(refused) else "unsaid"
    return None


def test_regions_and_their_departements() -> None:
    assert BRETAGNE.departements == {"22", "29", "35", "56"}
    assert BRETAGNE.name == "Bretagne" and IDF.covers("75") and not IDF.covers("35")
    assert region_of("2A") == "94" and region_of("99") is None and region_of(None) is None
    assert region_of_actor("ars-53") == "53"
    assert region_of_actor("ars-99") is None and region_of_actor("ars") is None


@pytest.mark.parametrize(
    ("stored", "commune", "expected"),
    [
        (None, RENNES, None),  # a new centre in its region
        ("35", RENNES, None),  # activated again where it is
        (None, PARIS, OUTSIDE_TERRITORY),  # a new centre in another region's commune
        ("75", RENNES, CENTRE_IN_OTHER_REGION),  # issue 28: Paris's id, a Breton commune
        ("75", PARIS, OUTSIDE_TERRITORY),  # Paris's centre, where it is
        ("35", BREST, CENTRE_IN_OTHER_DEPARTEMENT),  # moved within the region: refused too
    ],
)
def test_an_ars_activates_its_region_s_centres_where_they_are(
    stored: str | None, commune: str, expected: str | None
) -> None:
    assert refusal(BRETAGNE, stored, centre("c", commune)) == expected


@pytest.mark.parametrize(
    "payload",
    [
        CentreCapacityChanged(centre_id="c", boxes=3, from_date=date(2020, 3, 30)),
        CentreSuspended(centre_id="c", reason="x"),
        CentreClosed(centre_id="c", reason="x"),
    ],
)
def test_an_ars_changes_its_region_s_centres_only(payload: EventPayload) -> None:
    assert refusal(BRETAGNE, "35", payload) is None
    assert refusal(BRETAGNE, "75", payload) == OUTSIDE_TERRITORY
    # An id the scheduler does not hold yet: its activation may be in flight.
    assert refusal(BRETAGNE, None, payload) is None


def test_an_operator_acts_everywhere_but_moves_no_centre() -> None:
    """The national path: every region's centres, but a centre keeps its département."""
    assert refusal(None, "75", CentreSuspended(centre_id="c", reason="x")) is None
    assert refusal(None, None, centre("c", PARIS)) is None
    assert refusal(None, "75", centre("c", RENNES)) == CENTRE_IN_OTHER_REGION
    assert refusal(None, "35", centre("c", BREST)) == CENTRE_IN_OTHER_DEPARTEMENT


def test_an_ars_token_names_its_region() -> None:
    assert ars_region(Principal(Role.ARS, "53")) == BRETAGNE
    for caller in (Principal(Role.ARS, "idf"), Principal(Role.CENTRE_15, "53")):
        with pytest.raises(HTTPException) as refused:
            ars_region(caller)
        assert refused.value.status_code == 403


def test_an_ars_on_the_broker_is_its_region_s_user() -> None:
    policy = SenderPolicy(frozenset({"guest"}), suffix="-prod")
    sender = policy.resolve("ars-53-prod", None)
    assert (sender.kind, sender.actor, sender.name, sender.reply_key) == (
        ActorKind.ARS,
        "53",
        "ars-53",
        "ars-53",
    )
    # An operator acting for a region's ARS is judged as that ARS.
    acting = policy.resolve("guest", {"x-aiguillage-actor": "ars-11"})
    assert (acting.kind, acting.actor, acting.via) == (ActorKind.ARS, "11", "guest")
    # The former national user, and a user naming no region, act on nothing.
    for user in ("ars-prod", "ars-99-prod", "ars-bzh-prod"):
        with pytest.raises(SenderRefused) as refused:
            policy.resolve(user, None)
        assert refused.value.code == "sender_unknown"
