"""The ARS's page in a real browser, on the real services, at a phone's width and a
laptop's (issue 30): the region's map labelled with its départements and figures, a
centre's name on keyboard focus; the day picker changes the day's figures; the export
downloads a CSV a French spreadsheet reads (BOM, ``;``) with no identity; a reserve
centre activated in two clicks. axe-core finds nothing serious at each step."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from aiguillage.console.screenshots import log_in
from aiguillage.demo import wait_for_consumers, wait_for_drain
from shared.auth import Role
from shared.events import CentreSuspended
from shared.paris import PARIS
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.browser.axe import assert_accessible
from tests.browser.test_console import activate_centres, forget_centre_queues, rows, wait_until
from tests.console_session import person

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

OPEN = "paris-13-carte"
RESERVE = "saint-denis-reserve"


def _history(settings: Settings, centre_id: str, day: Any) -> None:
    """A past day at the centre, written where the scheduler keeps it (its SQLite
    file, times in UTC): three appointments, one seen, one missed."""
    noon = datetime.combine(day, time(12), PARIS).astimezone(UTC).replace(tzinfo=None)
    connection = sqlite3.connect(settings.data_dir / "scheduler.db", timeout=10)
    try:
        with connection:
            for n, status in enumerate(("fulfilled", "noshow", "booked")):
                start = noon + timedelta(minutes=20 * n)
                connection.execute(
                    "INSERT INTO appointments (id, referral_id, patient_ref, centre_id, start,"
                    ' "end", box, priority, distance_km, test_eligible, status, created_at)'
                    " VALUES (?, ?, ?, ?, ?, ?, 1, 'routine', 1.0, 0, ?, ?)",
                    (
                        f"h-{n}",
                        f"hr-{n}",
                        f"hp-{n}",
                        centre_id,
                        str(start),
                        str(start + timedelta(minutes=20)),
                        status,
                        str(start - timedelta(days=1)),
                    ),
                )
            connection.executemany(
                "INSERT INTO consultation_outcomes VALUES (?, ?, ?, 'centre')",
                [("h-0", "seen", str(noon)), ("h-1", "no_show", str(noon))],
            )
    finally:
        connection.close()


def _cell(driver: Any, table: str, dep: str, column: int) -> str:
    row = driver.find_element(By.CSS_SELECTOR, f'#{table} tr[data-departement="{dep}"]')
    return str(row.find_elements(By.CSS_SELECTOR, "td")[column].text.strip())


# A centre's marker: its name's visibility, then focused, again; its label.
FOCUS_MARKER = """
const marker = document.querySelector('#carte-region a[data-centre="' + arguments[0] + '"]');
const name = marker.querySelector(".nom-centre");
const before = getComputedStyle(name).visibility;
marker.focus();
return [before, getComputedStyle(name).visibility, marker.getAttribute("aria-label")];
"""

# The height on screen of a label's first line, in CSS pixels.
_HEIGHT = "return arguments[0].getBoundingClientRect().height"


def _assert_labels_read(driver: Any, width: int) -> None:
    """At a laptop's width each département's name and figures; at a phone's, where
    they would be 5 px high, its code alone, readable (the figures in the table)."""
    full = driver.find_element(
        By.CSS_SELECTOR, '#carte-region .etiquettes text[data-departement="75"]'
    )
    short = driver.find_element(
        By.CSS_SELECTOR, '#carte-region .etiquettes-courtes text[data-departement="75"]'
    )
    if width >= 1000:
        assert "Paris (75)" in full.text and "places libres" in full.text
        assert "en attente" in full.text
        assert not short.is_displayed()
        name = full.find_element(By.CSS_SELECTOR, "tspan.nom")
        assert driver.execute_script(_HEIGHT, name) >= 11, "the names are too small to read"
    else:
        assert not full.is_displayed() and short.text == "75"
        for code in ("75", "77", "92", "93", "94", "95"):
            shown = driver.find_element(
                By.CSS_SELECTOR,
                f'#carte-region .etiquettes-courtes text[data-departement="{code}"]',
            )
            assert driver.execute_script(_HEIGHT, shown) >= 12, f"{code}'s label is too small"
        row = driver.find_element(By.CSS_SELECTOR, '#departements tr[data-departement="75"]')
        assert "75 Paris" in row.text  # the code's name and figures, in the table


@pytest.mark.parametrize("width", [360, 1280])
async def test_the_ars_reads_its_map_its_days_and_opens_a_reserve_centre(
    settings: Settings, stack: Stack, browser: Any, width: int
) -> None:
    await wait_for_consumers(settings.broker_url, settings.namespace, timeout=60)
    try:
        await activate_centres(settings, (OPEN, "75113"), (RESERVE, "93066"))
        async with EventPublisher(settings.broker_url, settings.namespace, "ars") as ars:
            await ars.publish(
                CentreSuspended(centre_id=RESERVE, reason="réserve"), correlation_id=RESERVE
            )
        await wait_for_drain(settings.broker_url, f"{settings.namespace}.scheduler.centres")
        past = datetime.now(PARIS).date() - timedelta(days=2)
        _history(settings, OPEN, past)

        password = person(settings, "a.martin@ars.fr", "A. Martin", Role.ARS, "11")
        browser.set_window_size(width, 900)
        log_in(browser, stack.url, "a.martin@ars.fr", password)
        wait_until(browser, lambda d: rows(d, f'#centres tr[data-centre="{RESERVE}"]'))

        # The map: Île-de-France's départements outlined and labelled with their figures.
        paths = rows(browser, "#carte-region path.dep-region")
        assert sorted(p.get_attribute("data-departement") for p in paths) == [
            "75",
            "77",
            "78",
            "91",
            "92",
            "93",
            "94",
            "95",
        ]
        _assert_labels_read(browser, width)
        # A centre's marker: a link, its name shown when it has the keyboard's focus.
        # Read in one script: the page's live parts are fetched again on events (the
        # saturation forecasts come a few seconds after the centres' decisions).
        before, after, label = browser.execute_script(FOCUS_MARKER, OPEN)
        assert (before, after) == ("hidden", "visible")
        assert OPEN in (label or "") or "(Paris" in (label or "")
        assert not browser.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1"
        ), "the page scrolls sideways"
        assert_accessible(browser, f"the ARS's page at {width} px")

        # The day picker: today has nothing booked in Paris; the past day has its three.
        assert _cell(browser, "historique", "75", 1) == "0"
        browser.execute_script(
            "document.getElementById('jour').value = arguments[0]", past.isoformat()
        )
        browser.find_element(By.ID, "afficher-jour").click()
        wait_until(browser, lambda d: f"jour={past.isoformat()}" in d.current_url)
        assert [_cell(browser, "historique", "75", i) for i in range(1, 5)] == ["3", "1", "1", "0"]
        assert_accessible(browser, f"the ARS's past day at {width} px")

        # The export, as the link downloads it with the person's session.
        link = browser.find_element(By.ID, "export-csv").get_attribute("href")
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        async with httpx.AsyncClient(cookies=cookies) as http:
            answer = await http.get(str(link))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        assert answer.content.startswith(b"\xef\xbb\xbf")
        lines = answer.content.decode("utf-8-sig").splitlines()
        assert lines[0].split(";")[:4] == [
            "Date",
            "Code département",
            "Département",
            "Rendez-vous réservés",
        ]
        paris = next(line for line in lines if ";75;" in line)
        assert paris.split(";") == [past.isoformat(), "75", "Paris", "3", "1", "1", "0"]
        assert "hp-" not in answer.text and "hr-" not in answer.text

        # A reserve centre: listed with its capacity, activated in two clicks.
        browser.get(f"{stack.url}/territoire")
        entry = browser.find_element(By.CSS_SELECTOR, f'.reserve li[data-centre="{RESERVE}"]')
        assert "2 boxes" in entry.text
        entry.find_element(By.CSS_SELECTOR, "summary").click()
        entry.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(browser, lambda d: "activé à nouveau" in d.page_source)
        wait_until(
            browser,
            lambda d: (
                "actif"
                in d.find_element(By.CSS_SELECTOR, f'#centres tr[data-centre="{RESERVE}"]').text
                and not rows(d, f'.reserve li[data-centre="{RESERVE}"]')
            ),
        )
        assert_accessible(browser, f"the ARS's page after an activation at {width} px")
    finally:
        await forget_centre_queues(settings, OPEN, RESERVE)
