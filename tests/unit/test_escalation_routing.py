"""Issue 28: whom the notifier tells of an escalation (with the patient's contact):
every SAMU covering the patient's département, each on its own key, the national
Centre 15 only where it is enabled, and not a Centre 15 that hears it as the referrer."""

from __future__ import annotations

from services.notifier.handlers import CENTRE_15, NotifierHandlers
from services.notifier.handlers.telling import centre_15_keys as _centre_15_keys
from services.notifier.store.referrers import Referrer
from shared.settings import Settings
from shared.territory import Territories


def _keys(departement: str | None, **settings: object) -> list[str]:
    territories = Territories.of(Settings.model_validate(settings))
    return NotifierHandlers([], territories=territories)._samu_keys(departement)


def test_the_samus_covering_the_departement_and_the_national_where_enabled() -> None:
    assert _keys("35") == ["samu-35"]
    assert _keys("92", samu_departements="samu-75=75,92") == ["samu-75", "samu-92"]
    assert _keys("75", samu_departements="samu-75=75,92") == ["samu-75"]
    assert _keys("35", centre_15_national=True) == ["samu-35", CENTRE_15]
    # A département unknown (an escalation of before the field): the national one only.
    assert _keys(None) == []
    assert _keys(None, centre_15_national=True) == [CENTRE_15]


def _referrer(
    kind: str, identifier: str, reply_to: str | None, webhook: str | None = None
) -> Referrer:
    return Referrer("r-1", kind, identifier, reply_to, webhook, None)


def test_a_centre_15_referrer_is_not_told_twice_on_its_own_key() -> None:
    assert _centre_15_keys(_referrer("centre_15", "samu-35", "samu-35")) == {"samu-35"}
    # The Hub Santé door's national Centre 15: its key, and the LRM's id (no SAMU's).
    national = _referrer("centre_15", "fr.health.samuA", "centre-15")
    assert _centre_15_keys(national) == {"centre-15", "fr.health.samuA"}
    # A SAMU told by webhook alone is still told as the referrer.
    assert _centre_15_keys(_referrer("centre_15", "samu-35", None, "https://x")) == {"samu-35"}
    for heard_otherwise in (
        None,  # not known yet: the SAMUs are told, the deferred outcome is not told again
        _referrer("centre_15", "samu-35", None),  # no way to hear it as the referrer
        _referrer("gp", "samu-35", "samu-35"),  # not a Centre 15
    ):
        assert _centre_15_keys(heard_otherwise) == set()
