"""The console in a real browser, on the real services: the ARS activates a centre and
sees it appear; a centre sees only its own patients, marks one seen once its time has
come and corrects it; Centre 15
decides on a referral held for a regulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aio_pika
import pytest
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from aiguillage.console.screenshots import log_in
from aiguillage.demo import wait_for_consumers, wait_for_drain
from shared.auth import Role
from shared.events import RiskFactor, Vitals
from shared.paris import in_paris
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import centre_queue
from tests.browser.axe import assert_accessible
from tests.browser.fit import assert_fits
from tests.console_session import person
from tests.consultation_time import consultation_over
from tests.helpers import Tap, centre, referral

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def wait_until(driver: Any, condition: Callable[[Any], Any], timeout: float = 30.0) -> Any:
    # A part of the page may be replaced while it is read: read it again. Chromium
    # says so as stale or missing elements, or, mid-replacement, as an inspector error
    # ("Node with given id does not belong to the document").
    ignored = (NoSuchElementException, StaleElementReferenceException, WebDriverException)
    try:
        return WebDriverWait(driver, timeout, 0.2, ignored_exceptions=ignored).until(condition)
    except TimeoutException as exc:
        # What the page showed, to tell a slow service from a wrong page.
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"{driver.current_url}:\n{body[:3000]}") from exc


def rows(driver: Any, selector: str) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def decide_on(referral_id: str, decision: str, comment: str) -> Callable[[Any], bool]:
    """A regulator's decision on a held referral from Centre 15's desk."""

    def decide(driver: Any) -> bool:
        # The list is refreshed live: a row found before may have been replaced.
        try:
            row = driver.find_element(
                By.CSS_SELECTOR, f'#en-attente tr[data-referral="{referral_id}"]'
            )
            Select(row.find_element(By.NAME, "decision")).select_by_value(decision)
            row.find_element(By.NAME, "commentaire").send_keys(comment)
            row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        except StaleElementReferenceException:
            return False
        return True

    return decide


async def activate_centres(
    settings: Settings, *centres: tuple[str, str], described: dict[str, Any] | None = None
) -> None:
    """The ARS activates these (id, INSEE code) centres, the first ``described`` (its
    name, address...); returns once the scheduler has them."""
    async with EventPublisher(settings.broker_url, settings.namespace, "ars") as ars:
        for i, (centre_id, insee) in enumerate(centres):
            made = centre(centre_id, insee)
            if i == 0 and described:
                made = made.model_copy(update=described)
            await ars.publish(made, correlation_id=centre_id)
    await wait_for_drain(settings.broker_url, f"{settings.namespace}.scheduler.centres")


async def forget_centre_queues(settings: Settings, *centre_ids: str) -> None:
    # The notifier declares a durable queue per centre; the namespace's clean-up does
    # not know these centres.
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel()
        for centre_id in centre_ids:
            await channel.queue_delete(
                centre_queue(settings.namespace, centre_id).name(settings.namespace)
            )


async def test_the_ars_activates_a_centre_and_sees_it_appear(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    await wait_for_consumers(settings.broker_url, settings.namespace, timeout=60)
    try:
        password = person(settings, "a.martin@ars.fr", "A. Martin", Role.ARS, "11")
        log_in(browser, stack.url, "a.martin@ars.fr", password)
        assert browser.current_url.endswith("/territoire")
        assert "A. Martin" in browser.find_element(By.ID, "qui").text
        assert "Aucun centre" in browser.find_element(By.ID, "departements").text

        form = browser.find_element(By.ID, "form-activer")
        for name, value in {
            "centre_id": "paris-13-navigateur",
            "nom": "Gymnase Paris 13e",
            "commune": "75113",
            "boxes": "3",
        }.items():
            field = form.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(browser, lambda d: "Activation du centre" in d.page_source)

        # The scheduler applies the activation after the page has loaded: the row comes
        # in through the live stream, without a reload.
        browser.execute_script("window.__noReload = true;")
        row = wait_until(
            browser,
            lambda d: rows(d, '#centres tr[data-centre="paris-13-navigateur"]') or False,
        )[0]
        assert "Gymnase Paris 13e" in row.text
        assert "actif" in row.text
        assert rows(browser, '#departements tr[data-departement="75"]')
        assert rows(browser, '#carte-region a[data-centre="paris-13-navigateur"] circle')
        assert_accessible(browser, "the ARS's territory with a centre")

        # A decision published elsewhere reaches the open page too.
        async with EventPublisher(settings.broker_url, settings.namespace, "ars") as ars:
            await ars.publish(centre("creteil-ailleurs", "94028"), correlation_id="x")
        wait_until(browser, lambda d: rows(d, '#centres tr[data-centre="creteil-ailleurs"]'))
        assert browser.execute_script("return window.__noReload === true;")

        # So does a change of capacity, from today.
        form = browser.find_element(By.ID, "form-capacite")
        form.find_element(By.NAME, "centre_id").send_keys("paris-13-navigateur")
        form.find_element(By.NAME, "boxes").send_keys("5")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # Its row is replaced as the page reads the change: absent for a moment, which
        # is no answer yet (not an error).
        wait_until(
            browser,
            lambda d: any(
                cell.text.strip() == "5"
                for cell in d.find_elements(
                    By.CSS_SELECTOR, '#centres tr[data-centre="paris-13-navigateur"] td.n'
                )[:1]
            ),
        )

        # Suspending it goes through the same form-to-event path.
        form = browser.find_element(By.ID, "form-suspendre")
        form.find_element(By.NAME, "centre_id").send_keys("paris-13-navigateur")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(
            browser,
            lambda d: (
                "suspendu"
                in d.find_element(
                    By.CSS_SELECTOR, '#centres tr[data-centre="paris-13-navigateur"]'
                ).text
            ),
        )
    finally:
        await forget_centre_queues(settings, "paris-13-navigateur", "creteil-ailleurs")


async def test_a_centre_sees_only_its_own_patients_and_marks_one_seen(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        async with Tap(s.broker_url, s.namespace) as tap:
            await activate_centres(
                s,
                ("rennes-a", "35238"),
                ("paris-b", "75115"),
                described={"name": "Centre de Rennes-Sud", "address": "12 rue de Nantes"},
            )
            async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
                for i, first in enumerate(["Annick", "Armelle"]):
                    sent = referral(f"b-a-{i}", insee="35238", first_name=first)
                    if first == "Armelle":  # at risk: the centre prescribes her a test
                        sent = sent.model_copy(
                            update={
                                "clinical": sent.clinical.model_copy(
                                    update={"risk_factors": (RiskFactor.CHRONIC_RESPIRATORY,)}
                                )
                            }
                        )
                    await gp.publish(sent, correlation_id=f"a{i}")
                await gp.publish(
                    referral("b-b-0", insee="75115", first_name="Bérénice"), correlation_id="b0"
                )

            def all_told(events: list[Any]) -> bool:
                told = [
                    e
                    for e in events
                    if e.type == "notification.sent" and e.data.get("recipient_kind") == "centre"
                ]
                return len(told) >= 3

            await tap.wait_for(all_told, timeout=90)
        assigned = {e.data["centre_id"] for e in tap.of_type("slot.assigned")}
        assert assigned == {"rennes-a", "paris-b"}

        password = person(s, "c.durand@chu-rennes.fr", "C. Durand", Role.CENTRE, "rennes-a")
        log_in(browser, stack.url, "c.durand@chu-rennes.fr", password)
        assert browser.current_url.endswith("/centre")
        table = wait_until(browser, lambda d: d.find_element(By.ID, "rdv"))
        text = table.text
        assert "Annick" in text
        assert "Armelle" in text
        assert "Bérénice" not in text  # the other centre's patient
        assert len(rows(browser, "#rdv tr[data-appointment]")) == 2

        def test_column(driver: Any) -> dict[str, str]:
            # Read in one go, again if the list was refreshed live meanwhile (stale rows).
            read: dict[str, str] = {}
            for row in rows(driver, "#rdv tr[data-appointment]"):
                name = row.find_element(By.CSS_SELECTOR, "td.patient").text.splitlines()[0]
                read[name] = row.find_element(By.CSS_SELECTOR, ".test").text
            return read

        tests = wait_until(browser, test_column)
        assert tests == {
            "Annick Dupont-Lajoie": "Test à prescrire : non",
            "Armelle Dupont-Lajoie": "Test à prescrire : oui",
        }
        assert "Heure (Paris)" in text
        # Issue 30: the centre by its name and address, not its id; what regulation
        # decided for each patient, in words; who referred them (a kind, not who).
        heading = browser.find_element(By.CSS_SELECTOR, ".bandeau .sous-titre").text
        assert heading.startswith("Centre de Rennes-Sud") and "rennes-a" not in heading
        address = browser.find_element(By.CLASS_NAME, "adresse-centre").text
        assert address == "12 rue de Nantes, Rennes"

        def regulation_column(driver: Any) -> dict[str, str]:
            read: dict[str, str] = {}
            for row in rows(driver, "#rdv tr[data-appointment]"):
                name = row.find_element(By.CSS_SELECTOR, "td.patient").text.splitlines()[0]
                read[name] = row.find_element(By.CSS_SELECTOR, "td.regulation").text
            return read

        regulated = wait_until(browser, regulation_column)
        armelle = regulated["Armelle Dupont-Lajoie"]
        assert (
            "Régulé le" in armelle
            and "par le protocole" in armelle
            and ", protocole version 1" in armelle
        )
        assert "respiratoire" in armelle  # her risk factor, in regulation's words
        assert "respiratoire" not in regulated["Annick Dupont-Lajoie"]
        assert "Adressé par : médecin traitant" in text
        assert_accessible(browser, "a centre's day with its patients")

        # A centre is not the ARS.
        browser.get(f"{stack.url}/territoire")
        assert "rôle" in browser.page_source
        browser.get(f"{stack.url}/centre")

        # Before its slot starts, nothing can be recorded: "Vu" and "Absent" are off,
        # and say from when (issue 27). An escalation is never too early.
        def offered(driver: Any) -> dict[str, tuple[bool, bool, bool]]:
            read = {}
            for row in rows(driver, "#rdv tr[data-appointment]"):
                buttons = [
                    row.find_element(By.CSS_SELECTOR, f"button[value={v}]").is_enabled()
                    for v in ("seen", "no_show", "escalated")
                ]
                read[str(row.get_attribute("data-appointment"))] = tuple(buttons)
            return read

        before = wait_until(browser, offered)
        assert set(before.values()) == {(False, False, True)}
        first = rows(browser, "#rdv tr[data-appointment]")[0]
        assert (
            "« Vu » et « Annulé » à partir de" in first.find_element(By.CSS_SELECTOR, ".quand").text
        )
        appointment = str(first.get_attribute("data-appointment"))

        # Its time comes (the appointment moved into the past, where the services read
        # it): "Vu", then, within 24 hours, "Corriger" into "absent", at a phone's width.
        start, _ = await consultation_over(s.data_dir, appointment)
        browser.set_window_size(360, 900)
        browser.get(f"{stack.url}/centre?jour={in_paris(start).date().isoformat()}")
        selector = f'#rdv tr[data-appointment="{appointment}"]'
        wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{selector} button.vu"))
        # Every action of the page within a phone's width (issue 30).
        assert_fits(
            browser, f"{selector} button, {selector} input[name=motif], #form-renforts button"
        )
        assert_accessible(browser, "a centre's day at 360 px, a consultation under way")
        started = time.monotonic()

        def click(what: str) -> Callable[[Any], bool]:
            # Read again if the list was refreshed live meanwhile (a stale row).
            def clicked(driver: Any) -> bool:
                driver.find_element(By.CSS_SELECTOR, f"{selector} {what}").click()
                return True

            return clicked

        wait_until(browser, click("button.vu"))
        wait_until(
            browser,
            lambda d: d.find_element(By.CSS_SELECTOR, f"{selector} td.etat").text.strip() == "vu",
        )
        assert time.monotonic() - started < 30
        correct = wait_until(
            browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{selector} button.corriger")
        )
        assert correct.text == "Corriger : « absent »" and correct.is_enabled()
        assert "Possible jusqu'au" in browser.find_element(By.CSS_SELECTOR, selector).text
        wait_until(browser, click("button.corriger"))
        wait_until(browser, lambda d: "Correction de l'issue envoyée" in d.page_source)
        wait_until(
            browser,
            lambda d: (
                d.find_element(By.CSS_SELECTOR, f"{selector} td.etat").text.strip() == "absent"
            ),
        )
        # At a laptop's width, the other patient, once their slot is over: "Absent".
        other = next(
            str(r.get_attribute("data-appointment"))
            for r in rows(browser, "#rdv tr[data-appointment]")
            if r.get_attribute("data-appointment") != appointment
        )
        other_start, _ = await consultation_over(s.data_dir, other)
        browser.set_window_size(1280, 900)
        browser.get(f"{stack.url}/centre?jour={in_paris(other_start).date().isoformat()}")
        selector = f'#rdv tr[data-appointment="{other}"]'
        wait_until(browser, click("button.absent"))
        wait_until(
            browser,
            lambda d: (
                d.find_element(By.CSS_SELECTOR, f"{selector} td.etat").text.strip() == "absent"
            ),
        )
        assert_accessible(browser, "a centre's day at 1280 px")
        browser.get(f"{stack.url}/centre")

        # The centre asks the ARS for staff: it goes out as reinforcement.requested.
        async with Tap(s.broker_url, s.namespace, "reinforcement.requested.*") as asks:
            form = browser.find_element(By.ID, "form-renforts")
            count = form.find_element(By.NAME, "nombre")
            count.clear()
            count.send_keys("2")
            Select(form.find_element(By.NAME, "profession")).select_by_visible_text("infirmier")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_until(browser, lambda d: "Demande de renfort envoyée" in d.page_source)
            await asks.wait_for(lambda events: bool(events), timeout=30)
        request = asks.envelopes[0].data
        assert (request["centre_id"], request["count"], request["profession"]) == (
            "rennes-a",
            2,
            "infirmier",
        )
        # And from a phone: the form's button within the screen, the request sent.
        browser.set_window_size(360, 900)
        browser.get(f"{stack.url}/centre")
        assert_fits(browser, "#form-renforts button, #form-renforts input, #form-renforts select")
        async with Tap(s.broker_url, s.namespace, "reinforcement.requested.*") as asks:
            browser.find_element(By.CSS_SELECTOR, "#form-renforts button[type=submit]").click()
            wait_until(browser, lambda d: "Demande de renfort envoyée" in d.page_source)
            await asks.wait_for(lambda events: bool(events), timeout=30)
    finally:
        await forget_centre_queues(s, "rennes-a", "paris-b")


async def test_centre_15_decides_on_a_held_referral(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    try:
        async with Tap(s.broker_url, s.namespace) as tap:
            await activate_centres(s, ("rennes-c", "35238"))
            # A patient at risk referred without vitals: the protocol holds it.
            held = referral("b-h-0")
            clinical = held.clinical.model_copy(
                update={"risk_factors": (RiskFactor.CHRONIC_RESPIRATORY,), "vitals": Vitals()}
            )
            async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
                await gp.publish(held.model_copy(update={"clinical": clinical}), correlation_id="h")
                # A second one, decided at a phone's width.
                second = referral("b-h-1", first_name="Soizic")
                await gp.publish(
                    second.model_copy(update={"clinical": clinical}), correlation_id="h1"
                )
            await tap.wait_for(
                lambda events: (
                    sum(
                        e.type == "referral.regulated" and e.data.get("decision") == "hold"
                        for e in events
                    )
                    >= 2
                ),
                timeout=60,
            )

            login = "r.le-gall@samu35.fr"
            password = person(s, login, "R. Le Gall", Role.CENTRE_15, "samu-35")
            log_in(browser, stack.url, login, password)
            assert browser.current_url.endswith("/centre-15")

            def two_held(driver: Any) -> list[Any] | None:
                found = rows(driver, "#en-attente tr[data-referral]")
                return found if len(found) >= 2 else None

            found = wait_until(browser, two_held)
            referral_id, phone_id = (r.get_attribute("data-referral") for r in found[:2])
            assert_accessible(browser, "Centre 15's desk with a held referral")

            # At a phone's width: each held referral a card, its decision within reach.
            browser.set_window_size(360, 900)
            browser.get(f"{stack.url}/centre-15")
            phone_row = f'#en-attente tr[data-referral="{phone_id}"]'
            wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, phone_row))
            assert_fits(
                browser,
                "#en-attente form.decision button, #en-attente form.decision select, "
                "#en-attente form.decision input:not([type=hidden]), #en-attente a",
            )
            assert_accessible(browser, "Centre 15's desk at 360 px")
            wait_until(browser, decide_on(phone_id, "refuse", "Rappelé, guéri"))
            wait_until(browser, lambda d: "Décision enregistrée" in d.page_source)
            wait_until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, phone_row))
            browser.set_window_size(1280, 900)
            browser.get(f"{stack.url}/centre-15")

            def decide(driver: Any) -> bool:
                # The list is refreshed live: a row found before may have been replaced.
                try:
                    row = driver.find_element(
                        By.CSS_SELECTOR, f'#en-attente tr[data-referral="{referral_id}"]'
                    )
                    Select(row.find_element(By.NAME, "decision")).select_by_value("orient")
                    row.find_element(By.NAME, "commentaire").send_keys("Vu au téléphone, stable")
                    row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                except StaleElementReferenceException:
                    return False
                return True

            wait_until(browser, decide)
            wait_until(browser, lambda d: "Décision enregistrée" in d.page_source)
            wait_until(browser, lambda d: not rows(d, "#en-attente tr[data-referral]"))
            # The decision is the person's: their login is the regulator of record.
            await tap.wait_for(
                lambda events: any(
                    e.type == "referral.regulated" and e.data.get("decided_by") == login
                    for e in events
                ),
                timeout=30,
            )

            # The regulator's decision goes the whole way: the patient gets a slot.
            await tap.wait_for(
                lambda events: any(
                    e.type == "slot.assigned" and e.data.get("referral_id") == referral_id
                    for e in events
                ),
                timeout=60,
            )

        # The referral's decisions as a timeline (issue 30): when, who, what, in French,
        # with the protocol version; the record itself only behind "détails".
        for width in (1280, 360):
            browser.set_window_size(width, 900)
            browser.get(f"{stack.url}/centre-15/dossiers/{referral_id}")
            entries = rows(browser, "#chronologie > li")
            assert len(entries) == 2
            held_entry, decided_entry = (e.text for e in entries)
            assert "Le protocole (décision automatique)" in held_entry
            assert "Garder en attente d'un médecin régulateur" in held_entry
            assert f"Un médecin régulateur du Centre 15 ({login})" in decided_entry
            assert "Orienter vers un centre" in decided_entry
            assert "(décision en vigueur)" in decided_entry
            assert "Vu au téléphone, stable" in decided_entry
            assert "protocole version 1" in decided_entry
            assert '"decision"' not in decided_entry  # the JSON is folded away
            toggle = entries[1].find_element(By.TAG_NAME, "details")
            toggle.find_element(By.TAG_NAME, "summary").click()
            assert '"decided_by"' in toggle.text
            assert_fits(browser, "#chronologie summary, main a")
            assert_accessible(browser, f"a referral's timeline at {width} px")
    finally:
        await forget_centre_queues(s, "rennes-c")


async def test_a_person_logs_out_and_their_old_session_is_refused(
    settings: Settings, stack: Stack, browser: Any
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    login = "b.morvan@ars-bretagne.fr"
    password = person(s, login, "B. Morvan", Role.ARS, "53")
    try:
        log_in(browser, stack.url, login, password)
        assert browser.current_url.endswith("/territoire")
        old = browser.get_cookie("aiguillage_console")
        assert old is not None and old["httpOnly"] and old["sameSite"] == "Strict"

        # Act: activate a centre of their region (the audit trail names them).
        form = browser.find_element(By.ID, "form-activer")
        for name, value in {
            "centre_id": "rennes-deconnexion",
            "nom": "Salle Rennes",
            "commune": "35238",
        }.items():
            field = form.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(browser, lambda d: "Activation du centre" in d.page_source)
        browser.find_element(By.ID, "lien-audit").click()
        audit = wait_until(browser, lambda d: d.find_element(By.ID, "audit"))
        assert "rennes-deconnexion" in audit.text and login in audit.text
        assert_accessible(browser, "the audit trail with an entry")

        # Log out: the server ends the session.
        browser.find_element(By.CSS_SELECTOR, "form.deconnexion button").click()
        wait_until(browser, lambda d: d.current_url.split("?")[0].endswith("/connexion"))
        # The old cookie put back (as someone who copied it would): refused.
        browser.add_cookie(
            {"name": old["name"], "value": old["value"], "path": "/", "httpOnly": True}
        )
        browser.get(f"{stack.url}/territoire")
        wait_until(browser, lambda d: d.current_url.split("?")[0].endswith("/connexion"))
        assert browser.find_element(By.ID, "connexion")
    finally:
        await forget_centre_queues(s, "rennes-deconnexion")
