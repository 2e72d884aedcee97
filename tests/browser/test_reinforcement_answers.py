"""A centre's requests for reinforcement answered from the ARS's page in a real browser,
on the real services (issue 30): at a phone's width and at a laptop's, the ARS
acknowledges one, grants one (boxes, staff, hours) and declines one (a reason), each
form inside the window and axe-core finding nothing serious; the centre's page then
says each answer in French. The centre's day downloaded from its export link is a CSV
a French spreadsheet reads: a UTF-8 BOM, ``;`` between cells, the accents intact
(LibreOffice is not on the machines: the bytes are checked)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from aiguillage.console.screenshots import log_in
from aiguillage.demo import wait_for_consumers
from shared.auth import Role, issue_token
from shared.events import ReinforcementRequested
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.browser.axe import assert_accessible
from tests.browser.fit import assert_fits
from tests.browser.test_console import activate_centres, forget_centre_queues, wait_until
from tests.console_session import person
from tests.helpers import Tap, referral

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CENTRE = "paris-13-renfort"
ANSWER_CONTROLS = ".reponses-renfort button, .reponses-renfort input:not([type=hidden])"
REASON = "aucune infirmière disponible cette semaine"


async def _requests(settings: Settings, stack: Stack) -> list[dict[str, Any]]:
    """The region's requests, as the scheduler keeps them (the ARS's door)."""
    token = issue_token(settings, Role.ARS, "11", ServiceName.SCHEDULER)
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(
            f"http://127.0.0.1:{stack.services.ports['scheduler']}/reinforcements",
            headers={"Authorization": f"Bearer {token}"},
        )
    answer.raise_for_status()
    return list(answer.json()["reinforcements"])


def _entry(driver: Any, request_id: str) -> Any:
    """The request's item of the ARS's list (the page is refreshed live: found anew)."""
    return driver.find_element(
        By.XPATH,
        f"//ul[@class='renforts']/li[.//span[@class='etat-renfort']]"
        f"[.//input[@name='demande' and @value='{request_id}']]",
    )


def _answer(driver: Any, request_id: str, action: str, fields: dict[str, str]) -> None:
    """Fill the request's answer form ``action`` (its route) and send it; again from
    the start if the list was refreshed live meanwhile (a stale form)."""

    def send(driver: Any) -> bool:
        try:
            form = _entry(driver, request_id).find_element(
                By.CSS_SELECTOR, f'form[action="/territoire/renfort/{action}"]'
            )
            for name, value in fields.items():
                box = form.find_element(By.NAME, name)
                box.clear()
                box.send_keys(value)
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        except StaleElementReferenceException:
            return False
        return True

    wait_until(driver, send)


async def _ask(settings: Settings, counts: range) -> None:
    async with EventPublisher(settings.broker_url, settings.namespace, f"centre:{CENTRE}") as c:
        for count in counts:
            await c.publish(
                ReinforcementRequested(
                    centre_id=CENTRE,
                    count=count,
                    profession="infirmiers",
                    from_date=date.today() + timedelta(days=1),
                ),
                correlation_id=CENTRE,
            )


async def test_the_ars_answers_requests_at_both_widths_and_the_centre_reads_them(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        async with Tap(s.broker_url, s.namespace) as tap:
            await activate_centres(s, (CENTRE, "75113"))
            async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
                sent = referral(
                    "renfort-0", insee="75113", first_name="Hélène", last_name="Lefèvre"
                )
                await gp.publish(sent, correlation_id="renfort-0")
            await _ask(s, range(1, 7))
            await tap.wait_for(
                lambda es: any(
                    e.type == "notification.sent" and e.data.get("recipient_kind") == "centre"
                    for e in es
                ),
                timeout=90,
            )

        async def six() -> list[dict[str, Any]]:
            for _ in range(100):
                found = await _requests(s, stack)
                if len(found) == 6:
                    return sorted(found, key=lambda r: int(r["count"]))
                await asyncio.sleep(0.3)
            raise AssertionError(f"the scheduler has {len(found)} requests, not 6")

        asked = [r["request_id"] for r in await six()]

        ars = person(s, "r.leroy@ars.fr", "R. Leroy", Role.ARS, "11")
        log_in(browser, stack.url, "r.leroy@ars.fr", ars)
        for width, (ack, grant, decline) in ((360, asked[:3]), (1280, asked[3:])):
            browser.set_window_size(width, 900)
            browser.get(f"{stack.url}/territoire")
            wait_until(browser, lambda d, r=ack: _entry(d, r))
            assert_fits(browser, ANSWER_CONTROLS)
            assert_accessible(browser, f"the ARS's requests at {width} px")

            _answer(browser, ack, "prendre-en-compte", {})
            wait_until(browser, lambda d: "prise en compte." in d.page_source)
            _answer(
                browser,
                grant,
                "accorder",
                {"boxes": "1", "personnels": "2", "heures": "35", "note": "deux infirmières"},
            )
            wait_until(browser, lambda d: "Renfort accordé à" in d.page_source)
            _answer(browser, decline, "refuser", {"motif": REASON})
            wait_until(browser, lambda d: "refusée." in d.page_source)
            # The acknowledged one can still be granted or declined; the others cannot.
            assert _entry(browser, ack).find_elements(By.CSS_SELECTOR, "form")
            assert not browser.find_elements(
                By.CSS_SELECTOR, f'.reponses-renfort input[name=demande][value="{grant}"]'
            )
            assert_fits(browser, ANSWER_CONTROLS)
            assert_accessible(browser, f"the ARS's answered requests at {width} px")

        states = {r["request_id"]: r for r in await _requests(s, stack)}
        assert [states[r]["state"] for r in asked] == ["acknowledged", "granted", "declined"] * 2
        assert states[asked[1]]["granted"] == {"boxes": 1, "staff": 2, "hours": 35}
        assert states[asked[5]]["answer"] == REASON

        staff = person(s, "accueil@paris13.fr", "Accueil", Role.CENTRE, CENTRE)
        log_in(browser, stack.url, "accueil@paris13.fr", staff)
        for width in (360, 1280):
            browser.set_window_size(width, 900)
            browser.get(f"{stack.url}/centre")
            section = wait_until(browser, lambda d: d.find_element(By.ID, "mes-renforts"))
            said = [li.text for li in section.find_elements(By.CSS_SELECTOR, "li")]
            by_state = {
                li.get_attribute("data-state"): li.text
                for li in section.find_elements(By.CSS_SELECTOR, "li")
            }
            assert len(said) == 6
            assert "prise en compte par l'ARS" in by_state["acknowledged"]
            assert (
                "accordée — l'ARS vous accorde 1 box, 2 personnel(s), 35 heure(s)"
                in by_state["granted"]
            )
            assert f"refusée — motif : {REASON}" in by_state["declined"]
            assert_fits(browser, "#form-renforts button, #form-renforts input, #export-centre-csv")
            assert_accessible(browser, f"the centre's page at {width} px")

        # The day's export, as its link downloads it with the person's session.
        link = browser.find_element(By.ID, "export-centre-csv").get_attribute("href")
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        async with httpx.AsyncClient(cookies=cookies) as http:
            answer = await http.get(str(link))
        assert answer.status_code == 200, answer.text[:300]
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert "attachment" in answer.headers["content-disposition"]
        assert answer.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel and Calc read
        assert "Priorit\u00e9".encode() in answer.content  # é as UTF-8, not Latin-1
        table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
        assert table[0] == [
            "Date",
            "Début",
            "Fin",
            "Box",
            "Patient",
            "Priorité",
            "Test à prescrire",
            "Adressé par",
            "État",
        ]
        [row] = table[1:]
        assert len(row) == 9 and "Hélène" in row[4] and "Lefèvre" in row[4]
        assert row[7] == "médecin traitant"
    finally:
        await forget_centre_queues(s, CENTRE)
