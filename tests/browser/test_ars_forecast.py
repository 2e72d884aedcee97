"""The ARS's page shows each département's saturation forecast (issue 31), in a real
browser on the real services, at a phone's width and a laptop's: hours until full with
its band, the boxes needed for 24 h and 72 h, the reserve centre suggested by name, and
the chart of the last and next 72 hours drawn on the server with its figures in a
table; the map's label says it too. axe-core finds nothing serious."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from aiguillage.console.screenshots import log_in
from aiguillage.demo import wait_for_consumers, wait_for_drain
from shared.auth import Role
from shared.events import CentreSuspended
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.browser.axe import assert_accessible
from tests.browser.test_console import activate_centres, forget_centre_queues, rows, wait_until
from tests.console_session import person

if TYPE_CHECKING:
    from tests.browser.conftest import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

OPEN = "paris-13-prevision"
RESERVE = "paris-15-reserve"

READ_SECTION = """
const s = document.getElementById("prevision-" + arguments[0]);
const text = (q) => s.querySelector(q).textContent.trim();
const svg = s.querySelector("figure.graphique-prevision svg");
return {
  saturation: text('[data-champ="saturation"]'),
  boxes: text('[data-champ="boxes"]'),
  reserve: text('[data-champ="reserve"]'),
  role: svg.getAttribute("role"),
  labelledby: svg.getAttribute("aria-labelledby"),
  caption: document.getElementById(svg.getAttribute("aria-labelledby")).textContent.trim(),
  bars: svg.querySelectorAll(".arrivees rect").length,
  band: svg.querySelectorAll("polygon.bande").length > 0,
  rows: Array.from(s.querySelectorAll("details.chiffres-prevision tbody tr")).map(
    (r) => Array.from(r.querySelectorAll("td")).map((c) => c.textContent.trim())),
};
"""


def _arrivals(settings: Settings, per_day: int, days: int) -> None:
    """Paris's oriented patients of the last days, where the scheduler records them
    (its SQLite file, times in UTC): ``per_day`` a day, spread over the hours."""
    now = datetime.now(UTC).replace(tzinfo=None)
    step = timedelta(days=1) / per_day
    records = [
        ("75", "routine", 48.83, 2.36, str(now - (n + 1) * step)) for n in range(per_day * days)
    ]
    connection = sqlite3.connect(settings.data_dir / "scheduler.db", timeout=10)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO arrivals (departement, priority, lat, lon, arrived_at)"
                " VALUES (?, ?, ?, ?, ?)",
                records,
            )
    finally:
        connection.close()


@pytest.mark.parametrize("width", [360, 1280])
async def test_the_ars_sees_when_a_departement_will_be_full_and_what_to_open(
    settings: Settings, stack: Stack, browser: Any, width: int
) -> None:
    await wait_for_consumers(settings.broker_url, settings.namespace, timeout=60)
    try:
        # One centre open day and night (2 boxes, 144 places a day) and one in reserve.
        await activate_centres(settings, (OPEN, "75113"), (RESERVE, "75115"))
        async with EventPublisher(settings.broker_url, settings.namespace, "ars") as ars:
            await ars.publish(
                CentreSuspended(centre_id=RESERVE, reason="réserve"), correlation_id=RESERVE
            )
        await wait_for_drain(settings.broker_url, f"{settings.namespace}.scheduler.centres")
        _arrivals(settings, per_day=300, days=3)  # twice what the centre takes

        password = person(settings, "a.martin@ars.fr", "A. Martin", Role.ARS, "11")
        browser.set_window_size(width, 900)
        log_in(browser, stack.url, "a.martin@ars.fr", password)
        wait_until(browser, lambda d: rows(d, '#prevision-75 [data-champ="saturation"]'))

        # Read at once: the section is fetched again on every event of the territory.
        seen = browser.execute_script(READ_SECTION, "75")
        assert seen["saturation"].startswith("saturé"), seen  # within hours, with its band
        needed = [int(w) for w in seen["boxes"].replace(",", " ").split() if w.isdigit()]
        assert needed[0] >= 1 and needed[1] >= needed[0], seen["boxes"]
        assert f"Centre {RESERVE}" in seen["reserve"]
        # The chart: an image named by its caption, the past arrivals as bars, the band
        # ahead; its figures in the table, 12 rows of 6 hours on each side of now.
        assert seen["role"] == "img" and seen["labelledby"] == "graphique-titre-75"
        assert seen["caption"].startswith("75 Paris")
        assert seen["bars"] >= 12 and seen["band"]
        assert len(seen["rows"]) == 24
        assert sum(int(r[1]) for r in seen["rows"][:12]) > 0
        assert all(r[1] == "—" and r[4] != "—" for r in seen["rows"][12:])
        # The départements' table links to it; at a laptop's width the map says it.
        cell = browser.execute_script(
            "return document.querySelector(arguments[0]).textContent.trim()",
            '#departements tr[data-departement="75"] td a[href="#prevision-75"]',
        )
        assert cell.endswith("h"), cell
        if width >= 1000:
            label = browser.execute_script(
                "return document.querySelector(arguments[0]).textContent",
                '#carte-region .etiquettes text[data-departement="75"]',
            )
            assert "plein" in label, label
        assert not browser.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1"
        ), "the page scrolls sideways"
        assert_accessible(browser, f"the ARS's forecast at {width} px")
    finally:
        await forget_centre_queues(settings, OPEN, RESERVE)
