"""Issue 28: which départements each SAMU covers, and who is a SAMU at all (deny by
default), for a token's subject and for a broker user."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from shared.auth import Principal, Role
from shared.senders import CENTRE_15_KEY, ActorKind, SenderPolicy, SenderRefused
from shared.settings import Settings
from shared.territory import (
    NATIONAL,
    Territories,
    TerritoryError,
    centre_15_scope,
    parse_samu_departements,
    samu_and_regulator,
)

WIDENED = Territories.of(Settings(samu_departements="samu-75=75,92; samu-idf=75,77"))


def test_a_samu_covers_its_own_departement_and_what_the_setting_adds() -> None:
    assert Territories().departements("samu-35") == {"35"}
    assert Territories().departements("samu-2A") == {"2A"}
    assert WIDENED.departements("samu-75") == {"75", "92"}
    assert WIDENED.departements("samu-92") == {"92"}  # widening another takes nothing away
    assert WIDENED.departements("samu-idf") == {"75", "77"}
    for unknown in ("samu-99", "samu-", "35", "centre_15", "national", "samu-75:x"):
        assert Territories().departements(unknown) is None, unknown


def test_the_setting_is_read_strictly_and_said_in_french() -> None:
    assert parse_samu_departements("") == {}
    assert parse_samu_departements(" samu-75=75,92 ") == {"samu-75": frozenset({"75", "92"})}
    for bad in ("samu-75", "samu-75=", "75=75", "samu-75=75,999", "samu-75=75 samu-75=92"):
        with pytest.raises(TerritoryError):
            parse_samu_departements(bad)
    with pytest.raises(ValidationError, match="département inconnu"):
        Settings(samu_departements="samu-75=7")


def test_the_national_centre_15_only_where_enabled() -> None:
    assert Territories().scope(NATIONAL) is None
    national = Territories(national=True).scope(NATIONAL)
    assert national is not None and national.covers("75") and national.covers(None)
    samu = Territories(national=True).scope("samu-35")
    assert samu is not None and samu.covers("35") and not samu.covers("75")
    assert not samu.covers(None)


def test_a_token_names_its_samu_then_its_regulator() -> None:
    assert samu_and_regulator("samu-35:r.le-gall@samu35.fr") == ("samu-35", "r.le-gall@samu35.fr")
    assert samu_and_regulator("samu-35") == ("samu-35", "samu-35")
    scope = centre_15_scope(Territories(), Principal(Role.CENTRE_15, "samu-35:DR-x"))
    assert scope.departements == {"35"}
    for principal in (
        Principal(Role.CENTRE_15, "r.le-gall@samu35.fr"),  # no SAMU: before issue 28
        Principal(Role.CENTRE_15, NATIONAL),  # not enabled
        Principal(Role.ARS, "53"),
    ):
        with pytest.raises(HTTPException) as refused:
            centre_15_scope(Territories(), principal)
        assert refused.value.status_code == 403


def test_a_samu_s_broker_user_is_that_samu_and_is_answered_on_its_own_key() -> None:
    policy = SenderPolicy(frozenset({"guest"}), "-prod", territories=WIDENED)
    samu = policy.resolve("samu-75-prod", None)
    assert (samu.kind, samu.actor, samu.name, samu.reply_key) == (
        ActorKind.CENTRE_15,
        "samu-75",
        "samu-75",
        "samu-75",
    )
    assert not samu.trusted and samu.may_send("regulation.decided")
    # An operator acting for it is held to it too.
    via = policy.resolve("guest", {"x-aiguillage-actor": "samu-35"})
    assert (via.actor, via.via, via.trusted) == ("samu-35", "guest", False)
    for user, code in (("samu-99-prod", "sender_unknown"), ("centre_15-prod", "sender_unknown")):
        with pytest.raises(SenderRefused) as refused:
            policy.resolve(user, None)
        assert refused.value.code == code, user
    with pytest.raises(SenderRefused):
        policy.resolve("samu-35-prod", {"x-aiguillage-actor": "samu-75"})


def test_the_national_user_where_enabled_and_an_operator_acting_for_it() -> None:
    enabled = SenderPolicy(frozenset(), territories=Territories(national=True))
    national = enabled.resolve("centre_15", None)
    assert (national.kind, national.actor, national.reply_key) == (
        ActorKind.CENTRE_15,
        "",
        CENTRE_15_KEY,
    )
    # The operator is trusted anyway (the Hub Santé door without a SAMU, in development).
    operator = SenderPolicy(frozenset({"guest"})).resolve(
        "guest", {"x-aiguillage-actor": "centre_15"}
    )
    assert (operator.kind, operator.actor, operator.via) == (ActorKind.CENTRE_15, "", "guest")


def test_the_hub_sante_door_refers_as_the_samu_it_relays() -> None:
    from aiguillage.hubsante.door import _as_samu
    from shared.events import ReferrerKind
    from shared.events.referral import Referrer
    from tests.helpers import referral

    lrm = Referrer(kind=ReferrerKind.CENTRE_15, identifier="fr.health.samuA", reply_to="centre-15")
    made = referral("case-1").model_copy(update={"referrer": lrm})
    assert _as_samu(made, None) == made
    relayed = _as_samu(made, "samu-35").referrer
    assert (relayed.identifier, relayed.reply_to) == ("samu-35", "samu-35")


def test_every_samu_covering_a_departement_is_found() -> None:
    """Whom the notifier tells of an escalation: the département's own SAMU, and every
    SAMU the setting widens to it; a SAMU moved elsewhere no longer covers its own."""
    assert Territories().samus_covering("35") == ("samu-35",)
    assert Territories().samus_covering("2A") == ("samu-2A",)
    assert WIDENED.samus_covering("92") == ("samu-75", "samu-92")
    assert WIDENED.samus_covering("75") == ("samu-75", "samu-idf")
    assert WIDENED.samus_covering("77") == ("samu-77", "samu-idf")
    moved = Territories.of(Settings(samu_departements="samu-92=93"))
    assert moved.samus_covering("92") == ()
    assert moved.samus_covering("93") == ("samu-92", "samu-93")
