"""A centre's day list names its patients, and each name read is written down (issue 34),
in a real browser on the real services: a centre opens its day (and reloads it: the
same access, written once), a second person of the same centre opens it too (their own
read); the names come from the notifier's sealed contacts, and its log of identity
reads says who, when, which referral and from which page; the DPO's page lists those
reads beside intake's, per account and per patient."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from selenium.webdriver.common.by import By

from aiguillage.console.screenshots import log_in
from aiguillage.demo import wait_for_consumers
from shared.auth import Role
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.browser.axe import assert_accessible
from tests.browser.test_console import activate_centres, forget_centre_queues, wait_until
from tests.browser.test_identity_reads import _reads
from tests.console_session import person
from tests.helpers import Tap, referral

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CENTRE = "rennes-lu"
DAY_LIST = "liste du jour d'un centre (patients attendus)"


def _log_out(browser: Any) -> None:
    browser.find_element(By.CSS_SELECTOR, "form[action='/deconnexion'] button").click()


async def test_a_centre_s_day_writes_each_name_read_and_the_dpo_lists_them(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        async with Tap(s.broker_url, s.namespace) as tap:
            await activate_centres(s, (CENTRE, "35238"))
            async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
                for i, first in enumerate(("Gwenaëlle", "Maëlys")):
                    await gp.publish(
                        referral(f"lu-{i}", first_name=first, nir=None), correlation_id=f"lu{i}"
                    )
            await tap.wait_for(lambda es: len([e for e in es if e.type == "slot.assigned"]) >= 2)
        booked = {e.data["referral_id"] for e in tap.of_type("slot.assigned")}

        accueil, infirmiere = "accueil@lu-rennes.fr", "infirmiere@lu-rennes.fr"
        log_in(browser, stack.url, accueil, person(s, accueil, "Accueil", Role.CENTRE, CENTRE))
        for _ in range(2):  # opened, then reloaded: one read per patient
            browser.get(f"{stack.url}/centre")
            wait_until(browser, lambda d: "Gwenaëlle" in d.page_source)
            assert "Maëlys" in browser.page_source
        _log_out(browser)
        log_in(browser, stack.url, infirmiere, person(s, infirmiere, "Inf.", Role.CENTRE, CENTRE))
        wait_until(browser, lambda d: "Maëlys" in d.page_source)
        _log_out(browser)

        dpo = "dpo.centre@exemple.fr"
        log_in(browser, stack.url, dpo, person(s, dpo, "D. P. O.", Role.DPO, "dpo"))
        reads = [r for r in _reads(browser) if r["access"] == DAY_LIST]
        assert sorted((r["referral"], r["account"]) for r in reads) == sorted(
            (referral_id, account) for referral_id in booked for account in (accueil, infirmiere)
        )
        assert {r["page"] for r in reads} <= {"/centre", "/centre/fragment"}
        assert {r["reader"] for r in reads} == {f"Centre — {CENTRE}"}
        assert {r["reason"] for r in reads} == {"—"}
        assert_accessible(browser, "the DPO's log with a centre's reads")

        # Per account, and per patient (a referral's number).
        browser.get(f"{stack.url}/protection-des-donnees?compte={infirmiere}")
        assert sorted(r["referral"] for r in _reads(browser)) == sorted(booked)
        one = sorted(booked)[0]
        browser.get(f"{stack.url}/protection-des-donnees?dossier={one}")
        found = [r for r in _reads(browser) if r["access"] == DAY_LIST]
        assert {r["referral"] for r in found} == {one} and len(found) == 2
    finally:
        await forget_centre_queues(s, CENTRE)
