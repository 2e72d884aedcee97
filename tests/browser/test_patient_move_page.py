"""Another slot by the patient's link, in a real browser on the real services, at a
phone's width (360 px) and a laptop's (1280 px): the page offers three slots, books
only the one confirmed (the appointment kept until then), says so when the one chosen
was taken meanwhile, and after three moves says to call the centre. axe-core finds no
serious or critical violation on any of the pages, and none is wider than the screen.
The offers page is photographed at both widths (``AIGUILLAGE_TEST_SCREENSHOTS``: the
folder, docs/screenshots to refresh the documentation's; a temporary one otherwise)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from aiguillage.console.screenshots import patient_options_screenshots
from aiguillage.demo import wait_for_consumers, wait_for_drain
from shared.auth import Role, issue_token
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.browser.axe import assert_accessible
from tests.browser.test_console import forget_centre_queues, wait_until
from tests.browser.test_referrer import wait_for_link
from tests.helpers import Tap, centre
from tests.strategies import valid_referral

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Three centres around Rennes, named and placed as the ARS would.
CENTRES = (
    ("rennes-poterie-choix", "35238", "Centre Covid de la Poterie", "12 rue de la Poterie"),
    ("rennes-cleunay-choix", "35238", "SOS Médecins Cleunay", "3 rue Jules Lallemand"),
    ("st-gregoire-choix", "35278", "Centre hospitalier privé", "6 boulevard de la Boutière"),
)


async def _activate(settings: Settings) -> None:
    async with EventPublisher(settings.broker_url, settings.namespace, "ars") as ars:
        for centre_id, insee, name, address in CENTRES:
            event = centre(centre_id, insee, boxes=1).model_copy(
                update={"name": name, "address": address}
            )
            await ars.publish(event, correlation_id=centre_id)
    await wait_for_drain(settings.broker_url, f"{settings.namespace}.scheduler.centres")


async def _refer(settings: Settings, stack: Stack, reference: str = "choix-1") -> str:
    """A GP's referral through intake's HTTP door; its id."""
    token = issue_token(settings, Role.REFERRER, "gp:10001234567", ServiceName.INTAKE)
    port = stack.services.ports[ServiceName.INTAKE.value]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        answer = await client.post(
            "/referrals",
            json=valid_referral(reference),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 201, answer.text
    referral_id: str = answer.json()["referral_id"]
    return referral_id


def _screenshots(driver: Any, url: str, token: str, default: Path) -> list[Path]:
    """The offers page at both widths, in AIGUILLAGE_TEST_SCREENSHOTS or ``default``."""
    shots = Path(os.environ.get("AIGUILLAGE_TEST_SCREENSHOTS") or default)
    shots.mkdir(parents=True, exist_ok=True)
    written = patient_options_screenshots(driver, url, token, shots)
    assert all(path.stat().st_size > 10_000 for path in written)
    return written


def _fits(driver: Any, width: int, what: str) -> None:
    """At this width, nothing wider than the screen (no sideways scrolling), and axe."""
    assert driver.execute_script("return window.innerWidth") == width
    wide = driver.execute_script("return document.documentElement.scrollWidth")
    assert wide <= width, f"{what} is {wide} px wide at {width} px"
    assert_accessible(driver, f"{what} at {width} px")


def _token(driver: Any) -> str:
    token: str = driver.current_url.split("/patient/")[1].split("?")[0].split("/")[0]
    return token


def _move(driver: Any, url: str, token: str, width: int, pick: int) -> tuple[str, str, str]:
    """On the patient's page at ``width``: ask for another slot, see three, confirm the
    ``pick``-th; the page then shows it. Its (time, centre) and the new token."""
    driver.set_window_size(width, 900)
    driver.get(f"{url}/patient/{token}")
    _fits(driver, width, "the patient's page")
    driver.find_element(By.ID, "autre-creneau").click()
    wait_until(driver, lambda d: d.find_elements(By.ID, "form-creneaux"))
    _fits(driver, width, "the offers")
    labels = driver.find_elements(By.CSS_SELECTOR, "label.creneau")
    assert len(labels) == 3
    current = driver.find_element(By.ID, "rdv-actuel").text
    whens = [label.find_element(By.CSS_SELECTOR, ".quand").text for label in labels]
    assert all(" à " in when for when in whens)
    assert "km de votre commune" in labels[0].text
    # Confirming nothing books nothing: the browser asks for a choice first.
    driver.find_element(By.ID, "confirmer").click()
    assert "/autre-creneau" in driver.current_url and driver.find_elements(By.ID, "rdv-actuel")
    chosen = labels[pick]
    when = chosen.find_element(By.CSS_SELECTOR, ".quand").text
    where = chosen.find_element(By.CSS_SELECTOR, ".ou").text
    chosen.click()  # the label: its whole card is the target
    assert chosen.find_element(By.TAG_NAME, "input").is_selected()
    driver.find_element(By.ID, "confirmer").click()
    wait_until(driver, lambda d: "deplace=1" in d.current_url)
    _fits(driver, width, "the moved appointment")
    assert driver.find_element(By.ID, "rdv-heure").text.startswith(when)
    assert where.startswith(driver.find_element(By.ID, "rdv-centre").text)
    assert when not in current or where not in current
    return when, where, _token(driver)


async def _taken_meanwhile(settings: Settings, stack: Stack, driver: Any, token: str) -> None:
    """The patient reads the offers; another patient near them is booked the best of
    them before they confirm it: the page says so, in French, with the offers free now,
    and their appointment stands."""
    driver.get(f"{stack.url}/patient/{token}/autre-creneau")
    current = driver.find_element(By.ID, "rdv-actuel").text
    first = driver.find_element(By.CSS_SELECTOR, "label.creneau")
    taken = first.find_element(By.TAG_NAME, "input").get_attribute("value")
    other = await _refer(settings, stack, "choix-2")
    wait_for_link(settings, other)  # booked: the best slot for their commune, this one
    first.click()
    driver.find_element(By.ID, "confirmer").click()
    message = wait_until(driver, lambda d: d.find_element(By.ID, "message-creneaux"))
    assert "vient d'être pris" in message.text and message.get_attribute("role") == "alert"
    assert driver.find_element(By.ID, "rdv-actuel").text == current
    values = [
        option.get_attribute("value")
        for option in driver.find_elements(By.CSS_SELECTOR, "input[name=creneau]")
    ]
    assert values and taken not in values
    _fits(driver, driver.execute_script("return window.innerWidth"), "a slot taken meanwhile")


async def test_the_patient_chooses_another_slot_at_a_phone_s_and_a_laptop_s_width(
    settings: Settings, stack: Stack, browser: Any, tmp_path: Path
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        await _activate(s)
        referral_id = await _refer(s, stack)
        token = wait_for_link(s, referral_id)
        browser.delete_all_cookies()  # the patient has no session
        written = _screenshots(browser, stack.url, token, tmp_path)
        assert [path.name for path in written] == [
            "patient-options-360.png",
            "patient-options-1280.png",
        ]

        async with Tap(s.broker_url, s.namespace) as tap:
            first = token
            for width, pick in ((360, 1), (1280, 2)):
                before = token
                if width == 1280:
                    await _taken_meanwhile(s, stack, browser, token)
                _, _, token = _move(browser, stack.url, token, width, pick)
                assert token != before
                async with httpx.AsyncClient(base_url=stack.url) as client:
                    assert (await client.get(f"/patient/{before}")).status_code == 410
            await tap.wait_for(
                lambda events: (
                    len(
                        [
                            e
                            for e in events
                            if e.type == "appointment.cancelled"
                            and e.data.get("cancelled_by") == "patient"
                            and e.data.get("replaced_by")
                        ]
                    )
                    == 2
                ),
                timeout=60,
            )
        moved = tap.of_type("appointment.rescheduled")
        assert moved[0].data["previous_appointment_id"] == first.split(".")[1]

        # The third move at 360 px; then the page says to call the centre, at both widths.
        _move(browser, stack.url, token, 360, 0)
        token = _token(browser)
        for width in (360, 1280):
            browser.set_window_size(width, 900)
            browser.get(f"{stack.url}/patient/{token}")
            assert not browser.find_elements(By.ID, "autre-creneau")
            call = browser.find_element(By.ID, "appeler-centre").text
            assert "appelez le centre" in call
            assert browser.find_element(By.ID, "rdv-centre").text in call
            _fits(browser, width, "the patient's page after three moves")
            async with httpx.AsyncClient(base_url=stack.url) as client:
                answer = await client.get(f"/patient/{token}/autre-creneau")
            assert answer.status_code == 409 and "appelez le centre" in answer.text
            browser.get(f"{stack.url}/patient/{token}/autre-creneau")
            _fits(browser, width, "the offers after three moves")
    finally:
        await forget_centre_queues(s, *(c[0] for c in CENTRES))
