"""The referrer's page and the patient's link, in a real browser on the real services:
a GP refers and sees the appointment come without reloading; a screening request is
refused beside its field, in French; the patient opens the link of the notice (taken
from the notifier's record channel), asks for another slot, cancels, and the centre's
page shows the slot free again; a tampered or expired link is refused. axe-core finds
no serious or critical violation on any page, the existing ones included."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from aiguillage.console.screenshots import log_in
from aiguillage.demo import wait_for_consumers
from shared.auth import Role, issue_token
from shared.patient_link import issue_link
from shared.settings import ServiceName, Settings
from tests.browser.axe import assert_accessible
from tests.browser.fit import assert_fits
from tests.browser.test_console import activate_centres, forget_centre_queues, rows, wait_until
from tests.console_session import person
from tests.helpers import Tap
from tests.strategies import valid_referral

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LINK = re.compile(r"https?://\S+/patient/(\S+)")


def fill(driver: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = driver.find_element(By.NAME, name)
        if field.get_attribute("type") == "date":
            # A date input types as the browser's locale shows it: set the value itself.
            driver.execute_script("arguments[0].value = arguments[1];", field, value)
        else:
            field.clear()
            field.send_keys(value)


def choose_commune(driver: Any, typed: str, expected: str) -> None:
    field = driver.find_element(By.ID, "champ-patient-commune-name")
    field.clear()
    field.send_keys(typed)
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#communes-liste [role=option]"))
    assert field.get_attribute("aria-expanded") == "true"
    field.send_keys(Keys.ARROW_DOWN)
    field.send_keys(Keys.ENTER)
    wait_until(
        driver,
        lambda d: (
            d.find_element(By.ID, "champ-patient-commune-insee").get_attribute("value") == expected
        ),
    )


def set_checked(driver: Any, name: str, wanted: bool) -> None:
    box = driver.find_element(By.NAME, name)
    if box.is_selected() != wanted:
        box.click()


def patient_notices(settings: Settings, referral_id: str) -> list[str]:
    """The patient's notices the notifier's record channel kept for the referral."""
    connection = sqlite3.connect(settings.data_dir / "notifier.db")
    try:
        found = connection.execute(
            "SELECT body FROM notifications WHERE referral_id = ? AND recipient_kind = "
            "'patient' AND channel = 'record' ORDER BY created_at",
            (referral_id,),
        ).fetchall()
    finally:
        connection.close()
    return [row[0] for row in found]


def wait_for_link(settings: Settings, referral_id: str, count: int = 1) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        links = [m.group(1) for body in patient_notices(settings, referral_id)
                 for m in [LINK.search(body)] if m]  # fmt: skip
        if len(links) >= count:
            return links[count - 1]
        time.sleep(0.5)
    raise AssertionError(f"no patient notice with a link for {referral_id}")


async def test_a_gp_refers_and_the_patient_moves_then_cancels_by_the_link(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        await activate_centres(s, ("rennes-adresse", "35238"))
        login = "dr.martin@cabinet-rennes.fr"
        password = person(s, login, "Dr Martin", Role.REFERRER, "gp-10009998887")
        log_in(browser, stack.url, login, password)
        assert browser.current_url.endswith("/adresser")
        assert_accessible(browser, "the referral form")

        # An asymptomatic screening request: refused by intake, the reason in French
        # beside the field, announced in the summary.
        fill(browser, {
            "patient.last_name": "Le Bihan",
            "patient.first_name": "Maëlle",
            "patient.birth_date": "1979-04-02",
            "patient.phone": "0611223344",
        })  # fmt: skip
        choose_commune(browser, "Renn", "35238")
        Select(browser.find_element(By.NAME, "purpose")).select_by_value("screening")
        set_checked(browser, "clinical.symptomatic", False)
        browser.execute_script("window.__noReload = true;")
        browser.find_element(By.ID, "envoyer").click()
        summary = wait_until(browser, lambda d: d.find_element(By.ID, "resume-erreurs"))
        assert summary.get_attribute("role") == "alert"
        beside = browser.find_element(By.ID, "champ-purpose-erreur")
        assert "pas des centres de dépistage" in beside.text
        purpose = browser.find_element(By.NAME, "purpose")
        assert purpose.get_attribute("aria-invalid") == "true"
        assert "champ-purpose-erreur" in (purpose.get_attribute("aria-describedby") or "")
        assert browser.execute_script("return window.__noReload === true;")
        assert_accessible(browser, "the form with its reasons")

        # The same patient, symptomatic, for a consultation: the appointment comes in
        # on the same page, without reloading.
        Select(browser.find_element(By.NAME, "purpose")).select_by_value("consultation")
        set_checked(browser, "clinical.symptomatic", True)
        set_checked(browser, "patient.sms_consent", True)
        fill(browser, {
            "clinical.symptoms": "fièvre, toux",
            "clinical.vitals.spo2": "97",
            "clinical.vitals.respiratory_rate": "16",
            "clinical.vitals.systolic_bp": "125",
            "clinical.vitals.temperature_c": "38,4",
        })  # fmt: skip
        if not browser.find_element(By.ID, "champ-patient-commune-insee").get_attribute("value"):
            choose_commune(browser, "Renn", "35238")
        browser.find_element(By.ID, "envoyer").click()
        given = wait_until(
            browser, lambda d: d.find_element(By.ID, "rendez-vous-donne"), timeout=60
        )
        assert "rennes-adresse" in given.text or "Centre" in given.text
        assert "à" in browser.find_element(By.CSS_SELECTOR, ".rdv-heure").text
        assert browser.execute_script("return window.__noReload === true;")
        assert_accessible(browser, "the outcome")
        source = browser.find_element(By.ID, "issue-demande").get_attribute("data-src")
        referral_id = source.split("/")[3]

        # Mes demandes: hers, searchable, with the status and the history.
        browser.get(f"{stack.url}/mes-demandes")
        assert "Le Bihan" in browser.find_element(By.ID, "demandes").text
        assert_accessible(browser, "Mes demandes")
        browser.get(f"{stack.url}/mes-demandes?q=bihan")
        assert len(rows(browser, "#demandes tr[data-referral]")) == 1
        browser.get(f"{stack.url}/mes-demandes?q=personne-de-ce-nom")
        assert not rows(browser, "#demandes tr[data-referral]")
        browser.get(f"{stack.url}/adresser/demandes/{referral_id}")
        history = browser.find_element(By.ID, "historique").text
        assert "Rendez-vous" in history and "reçue" in history
        assert_accessible(browser, "a referral's history")
        browser.get(f"{stack.url}/adresser/demandes/{referral_id}/avis")
        assert "/patient/p1." in browser.find_element(By.ID, "lien-patient").text
        assert_accessible(browser, "the printable notice")

        # The patient's link, from the notice the notifier recorded.
        token = wait_for_link(s, referral_id)
        browser.delete_all_cookies()  # the patient has no session
        browser.get(f"{stack.url}/patient/{token}")
        assert "Votre rendez-vous" in browser.find_element(By.TAG_NAME, "h1").text
        assert browser.find_element(By.ID, "rdv-heure").text
        assert browser.find_elements(By.CSS_SELECTOR, "figure.carte-patient svg")
        assert_accessible(browser, "the patient's page")

        # Tampered or expired: refused, in French, with the right status.
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        other = token.split(".")
        forged = ".".join([other[0], other[1], "00000000-0000-0000-0000-000000000000", *other[3:]])
        expired = issue_link(s.patient_link_key, other[1], other[2], int(time.time()) - 60)
        async with httpx.AsyncClient(base_url=stack.url) as client:
            for bad in (tampered, forged):
                answer = await client.get(f"/patient/{bad}")
                assert answer.status_code == 403 and "Lien non valide" in answer.text
            answer = await client.get(f"/patient/{expired}")
            assert answer.status_code == 410 and "expiré" in answer.text
            # The services refuse it themselves, whoever calls them.
            scheduler = stack.services.ports["scheduler"]
            direct = await client.get(
                f"http://127.0.0.1:{scheduler}/patient/appointment",
                headers={"X-Patient-Link": tampered},
            )
            assert direct.status_code == 403
        browser.get(f"{stack.url}/patient/{tampered}")
        assert "Lien non valide" in browser.page_source
        assert_accessible(browser, "a refused link")

        # Another slot: the patient confirms one of those offered; the page follows the
        # new link, the old one stops working (tests/browser/test_patient_move_page.py).
        async with Tap(s.broker_url, s.namespace) as tap:
            browser.get(f"{stack.url}/patient/{token}")
            browser.find_element(By.ID, "autre-creneau").click()
            wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "label.creneau"))
            browser.find_element(By.CSS_SELECTOR, "label.creneau").click()
            browser.find_element(By.ID, "confirmer").click()
            wait_until(browser, lambda d: "deplace=1" in d.current_url)
            moved_token = browser.current_url.split("/patient/")[1].split("?")[0]
            assert moved_token != token
            async with httpx.AsyncClient(base_url=stack.url) as client:
                assert (await client.get(f"/patient/{token}")).status_code == 410

            # Cancel: the patient is who cancelled, the centre hears of it.
            browser.find_element(By.ID, "annuler").click()
            done = wait_until(browser, lambda d: d.find_element(By.ID, "message-patient"))
            assert "annulé" in done.text
            await tap.wait_for(
                lambda events: any(
                    e.type == "appointment.cancelled"
                    and e.data.get("cancelled_by") == "patient"
                    and e.data.get("replaced_by") is None
                    for e in events
                ),
                timeout=60,
            )
        moves = [e for e in tap.of_type("appointment.rescheduled")]
        assert moves and moves[0].data["referral_id"] == referral_id
        async with httpx.AsyncClient(base_url=stack.url) as client:
            assert (await client.get(f"/patient/{moved_token}")).status_code == 410

        # The centre's page: the slot is free again (nothing booked left).
        centre_login = "accueil@rennes-adresse.fr"
        centre_password = person(s, centre_login, "Accueil", Role.CENTRE, "rennes-adresse")
        log_in(browser, stack.url, centre_login, centre_password)
        day = moves[0].data["start"][:10]
        browser.get(f"{stack.url}/centre?jour={day}")
        wait_until(
            browser,
            lambda d: (
                rows(d, "#rdv tr[data-appointment]")
                and all(
                    r.find_element(By.CSS_SELECTOR, "td.etat").text.strip() == "annulé"
                    for r in rows(d, "#rdv tr[data-appointment]")
                )
            ),
        )
        assert_accessible(browser, "the centre's page")

        # The referrer's own page says so too.
        log_in(browser, stack.url, login, password)
        browser.get(f"{stack.url}/adresser/demandes/{referral_id}")
        assert "par le patient" in browser.find_element(By.ID, "historique").text
    finally:
        await forget_centre_queues(s, "rennes-adresse")


async def test_every_existing_page_passes_axe(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        await activate_centres(s, ("rennes-axe", "35238"))
        browser.get(f"{stack.url}/connexion")
        assert_accessible(browser, "the log-in page")
        # A failed log-in shows its error.
        browser.find_element(By.ID, "identifiant").send_keys("personne@nulle-part.fr")
        browser.find_element(By.ID, "mot_de_passe").send_keys("pas le bon mot de passe")
        browser.find_element(By.ID, "se-connecter").click()
        wait_until(browser, lambda d: "inconnu" in d.page_source)
        assert_accessible(browser, "a failed log-in")

        ars = person(s, "axe@ars-bretagne.fr", "A. Xe", Role.ARS, "53")
        log_in(browser, stack.url, "axe@ars-bretagne.fr", ars)
        wait_until(browser, lambda d: rows(d, '#centres tr[data-centre="rennes-axe"]'))
        assert_accessible(browser, "the ARS's territory")
        browser.get(f"{stack.url}/audit")
        assert_accessible(browser, "the audit trail")

        centre = person(s, "axe@rennes-axe.fr", "C. Axe", Role.CENTRE, "rennes-axe")
        log_in(browser, stack.url, "axe@rennes-axe.fr", centre)
        assert_accessible(browser, "a centre's day")
        browser.get(f"{stack.url}/territoire")  # not a centre's page: refused
        assert_accessible(browser, "a refusal")

        regulator = person(s, "axe@samu35.fr", "R. Axe", Role.CENTRE_15, "samu-35")
        log_in(browser, stack.url, "axe@samu35.fr", regulator)
        assert_accessible(browser, "Centre 15's desk")
        # A regulator refers too, for their Centre 15.
        browser.get(f"{stack.url}/adresser")
        assert browser.find_element(By.ID, "form-adresser")
        assert_accessible(browser, "Centre 15's referral form")
    finally:
        await forget_centre_queues(s, "rennes-axe")


async def test_a_gp_withdraws_a_referral_from_its_page_with_a_reason_and_a_confirmation(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    """Issue 27: the referral's page offers "Retirer" with the reasons of the list; the
    GP confirms on a page of its own, and the slot is freed, the centre told, the
    status says who withdrew and why; the button is gone once it is done."""
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        await activate_centres(s, ("rennes-retrait", "35238"))
        login = "dr.leroux@cabinet-rennes.fr"
        password = person(s, login, "Dr Leroux", Role.REFERRER, "gp-10009998886")
        referral_id = await _booked_over_http(s, stack, "10009998886", "retrait-1")
        log_in(browser, stack.url, login, password)
        page = f"{stack.url}/adresser/demandes/{referral_id}"
        # Issue 30: from a phone, the list of referrals, each a card with its link, and
        # the withdrawal's form and confirmation within the screen; no confirmation yet.
        browser.set_window_size(360, 900)
        browser.get(f"{stack.url}/mes-demandes")
        assert_fits(browser, "#demandes a, .recherche input, .recherche button")
        assert_accessible(browser, "Mes demandes at 360 px")
        browser.find_element(
            By.CSS_SELECTOR, f'#demandes tr[data-referral="{referral_id}"] a'
        ).click()
        wait_until(browser, lambda d: d.find_element(By.ID, "form-retirer"))
        assert_fits(browser, "#form-retirer select, #form-retirer button")
        Select(browser.find_element(By.ID, "motif-retrait")).select_by_value("other")
        browser.find_element(By.ID, "retirer").click()
        wait_until(browser, lambda d: d.find_element(By.ID, "confirmer-retrait"))
        assert_fits(browser, "#confirmer-retrait, #ne-pas-retirer")
        assert_accessible(browser, "the withdrawal's confirmation at 360 px")
        browser.find_element(By.ID, "ne-pas-retirer").click()
        wait_until(browser, lambda d: d.find_element(By.ID, "form-retirer"))
        browser.set_window_size(1280, 900)
        browser.get(f"{stack.url}/mes-demandes")
        assert_fits(browser, "#demandes a")
        assert_accessible(browser, "Mes demandes at 1280 px")
        browser.get(page)
        choices = Select(browser.find_element(By.ID, "motif-retrait"))
        assert [o.get_attribute("value") for o in choices.options][1:] == [
            "patient_recovered",
            "seen_elsewhere",
            "hospitalised",
            "referral_error",
            "patient_declined",
            "other",
        ]
        assert_accessible(browser, "a referral with its withdrawal form")

        # Asked to confirm, and not confirmed: nothing happens.
        choices.select_by_value("seen_elsewhere")
        browser.find_element(By.ID, "retirer").click()
        wait_until(browser, lambda d: d.find_element(By.ID, "confirmer-retrait"))
        assert browser.find_element(By.ID, "motif-choisi").text == "Le patient a été vu ailleurs"
        assert_accessible(browser, "the withdrawal's confirmation")
        browser.find_element(By.ID, "ne-pas-retirer").click()
        wait_until(browser, lambda d: d.find_element(By.ID, "form-retirer"))
        assert (await _status(s, stack, "10009998886", referral_id))["status"] == "appointment"

        # Confirmed: withdrawn, the slot freed and the centre told.
        async with Tap(s.broker_url, s.namespace, "appointment.cancelled.*") as tap:
            Select(browser.find_element(By.ID, "motif-retrait")).select_by_value(
                "patient_recovered"
            )
            browser.find_element(By.ID, "retirer").click()
            wait_until(browser, lambda d: d.find_element(By.ID, "confirmer-retrait")).click()
            done = wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".message.ok"))
            assert "Demande retirée" in done.text
            await tap.wait_for(lambda es: bool(es), timeout=60)
        [cancelled] = tap.of_type("appointment.cancelled")
        assert cancelled.data["cancelled_by"] == "referrer"
        assert cancelled.data["reason_code"] == "patient_recovered"
        status = await _status(s, stack, "10009998886", referral_id)
        assert status["status"] == "cancelled" and status["final"] is True
        assert status["detail"]["by"] == "referrer"
        browser.get(page)
        history = browser.find_element(By.ID, "historique").text
        assert "par le médecin adresseur" in history and "le patient va mieux" in history
        assert not browser.find_elements(By.ID, "form-retirer")
        assert_accessible(browser, "a withdrawn referral")
    finally:
        await forget_centre_queues(s, "rennes-retrait")


async def _status(s: Settings, stack: Stack, gp: str, referral_id: str) -> dict[str, Any]:
    token = issue_token(s, Role.REFERRER, f"gp:{gp}", ServiceName.INTAKE)
    url = f"http://127.0.0.1:{stack.services.ports['intake']}/referrals/{referral_id}"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        found: dict[str, Any] = (await http.get(url)).json()
    return found


async def _booked_over_http(s: Settings, stack: Stack, gp: str, reference: str) -> str:
    """A referral of the GP's practice software (intake's HTTP door), once booked."""
    body = valid_referral(reference)
    body["referrer"] = {"kind": "gp", "identifier": gp}
    token = issue_token(s, Role.REFERRER, f"gp:{gp}", ServiceName.INTAKE)
    url = f"http://127.0.0.1:{stack.services.ports['intake']}/referrals"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        created = await http.post(url, json=body)
    assert created.status_code == 201, created.text
    referral_id: str = created.json()["referral_id"]
    deadline = time.monotonic() + 60
    while (await _status(s, stack, gp, referral_id))["status"] != "appointment":
        assert time.monotonic() < deadline, "no appointment within 60 s"
        await asyncio.sleep(0.3)
    return referral_id
