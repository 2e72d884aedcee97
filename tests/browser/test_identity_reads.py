"""Every read of an identity is written down (issue 34), in a real browser on the real
services: a regulator sees an escalated patient on the Centre 15 desk and opens the file
(one read each), opens a file outside their queue after giving a reason (one read, with
the reason); a GP reads their list (one read per referral shown); reading again within
the window writes nothing more; the DPO's page lists each read in French, per patient
and per account, and exports them as CSV."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from aiguillage.console.screenshots import log_in
from aiguillage.demo import wait_for_consumers
from shared.auth import Role
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.browser.axe import assert_accessible
from tests.browser.test_console import activate_centres, forget_centre_queues, rows, wait_until
from tests.console_session import person
from tests.helpers import Tap, referral

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def _reads(driver: Any) -> list[dict[str, str]]:
    found = []
    for row in rows(driver, "#acces tbody tr[data-referral]"):
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        found.append(
            {
                "referral": row.get_attribute("data-referral") or "",
                "reader": cells[2],
                "account": cells[3],
                "access": cells[4],
                "page": cells[5],
                "reason": cells[6],
            }
        )
    return found


async def test_each_read_of_an_identity_is_written_once_and_the_dpo_reads_them(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        async with Tap(s.broker_url, s.namespace) as tap:
            await activate_centres(s, ("rennes-d", "35238"))
            async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
                await gp.publish(referral("acc-1", severe=True), correlation_id="acc-1")
                await gp.publish(
                    referral("acc-2", first_name="Soizic", nir=None), correlation_id="acc-2"
                )
            await tap.wait_for(
                lambda es: (
                    any(e.type == "patient.escalated" or _escalated(e) for e in es)
                    and any(e.type == "slot.assigned" for e in es)
                ),
                timeout=60,
            )
            # The referral with a slot: not in the regulator's queue.
            [other] = {e.data["referral_id"] for e in tap.envelopes if e.type == "slot.assigned"}
        regulator = "r.acces@samu35.fr"
        log_in(
            browser, stack.url, regulator, person(s, regulator, "R. A.", Role.CENTRE_15, "samu-35")
        )
        escalated_row = "#escalades tr td a[href^='/centre-15/dossiers/']"
        link = wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, escalated_row))
        escalated = (link.get_attribute("href") or "").rsplit("/", 1)[-1]
        for _ in range(2):  # the file opened twice: one read
            browser.get(f"{stack.url}/centre-15/dossiers/{escalated}")
            wait_until(browser, lambda d: "Cet accès à l'identité est enregistré" in d.page_source)
        assert_accessible(browser, "a file in the regulator's queue, with its identity")

        # The other referral has a slot: outside the queue, the page asks why.
        browser.get(f"{stack.url}/centre-15/dossiers/{other}")
        motif = wait_until(browser, lambda d: d.find_element(By.ID, "motif"))
        assert "Soizic" not in browser.page_source
        assert_accessible(browser, "a file outside the queue, its reason asked")
        motif.send_keys("Rappel du patient à sa demande")
        browser.find_element(By.CSS_SELECTOR, "#identite button[type=submit]").click()
        wait_until(browser, lambda d: "Soizic" in d.page_source)
        browser.find_element(By.CSS_SELECTOR, "form[action='/deconnexion'] button").click()

        gp_login = "dr.acces@exemple.fr"
        log_in(
            browser,
            stack.url,
            gp_login,
            person(s, gp_login, "Dr A.", Role.REFERRER, "gp-10001234567"),
        )
        browser.get(f"{stack.url}/mes-demandes")
        wait_until(browser, lambda d: "Soizic" in d.page_source)
        browser.find_element(By.CSS_SELECTOR, "form[action='/deconnexion'] button").click()

        dpo = "dpo@exemple.fr"
        log_in(browser, stack.url, dpo, person(s, dpo, "D. P. O.", Role.DPO, "dpo"))
        assert browser.current_url.endswith("/protection-des-donnees")
        reads = _reads(browser)
        desk = [r for r in reads if r["access"].startswith("liste des patients à rappeler")]
        opened = [r for r in reads if r["access"].startswith("dossier d'un patient")]
        listed = [r for r in reads if r["access"].startswith("liste « Mes demandes »")]
        assert [r["referral"] for r in desk] == [escalated]
        assert desk[0]["account"] == regulator and desk[0]["page"] in (
            "/centre-15",
            "/centre-15/fragment",
        )
        # Opened twice, written once; the file outside the queue with its reason.
        assert sorted((r["referral"], r["reason"], r["page"]) for r in opened) == sorted(
            [
                (escalated, "—", f"/centre-15/dossiers/{escalated}"),
                (other, "Rappel du patient à sa demande", f"/centre-15/dossiers/{other}/identite"),
            ]
        )
        assert {r["referral"] for r in listed} == {escalated, other}
        assert {r["account"] for r in listed} == {gp_login}
        assert "Centre 15 — samu-35:r.acces@samu35.fr" in opened[0]["reader"]
        assert_accessible(browser, "the DPO's log of identity reads")

        # Per patient, per account, and exported.
        browser.get(f"{stack.url}/protection-des-donnees?dossier={other}")
        assert {r["referral"] for r in _reads(browser)} == {other}
        browser.get(f"{stack.url}/protection-des-donnees?compte={gp_login}")
        assert {r["account"] for r in _reads(browser)} == {gp_login}
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        async with httpx.AsyncClient(base_url=stack.url, cookies=cookies) as http:
            exported = await http.get("/protection-des-donnees/export.csv")
        assert exported.status_code == 200
        lines = exported.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("Date (heure de Paris);Dossier;Lecteur")
        assert len(lines) == 1 + len(reads)
        assert any("Rappel du patient à sa demande" in line for line in lines)
    finally:
        await forget_centre_queues(s, "rennes-d")


def _escalated(event: Any) -> bool:
    return event.type == "referral.regulated" and event.data.get("decision") == "escalate"
