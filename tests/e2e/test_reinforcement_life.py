"""A centre's request for reinforcement has a life (issue 30): the centre asks, the ARS
grants it on its page, and the centre reads it on its page and on its own queue, in
French; a request nobody answers is raised again to the ARS after two hours, once.
The services run as processes on the real broker; the clock of the check is the test's.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import aio_pika
import httpx
import pytest

from aiguillage.console.app import create_app
from aiguillage.console.people import open_store
from aiguillage.demo import wait_for_consumers
from aiguillage.processes import ServiceProcesses
from services.scheduler.handlers.reinforcements import raise_unanswered
from shared.auth import Role, issue_token
from shared.db import Database
from shared.events import ReinforcementRequested, utcnow
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import centre_queue
from tests.console_session import csrf_of, log_in
from tests.helpers import Tap, centre

pytestmark = pytest.mark.e2e

CENTRE = "rennes-vie"


async def _requests(processes: ServiceProcesses, settings: Settings) -> list[dict[str, Any]]:
    token = issue_token(settings, Role.ARS, "53", ServiceName.SCHEDULER)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"http://127.0.0.1:{processes.ports['scheduler']}/reinforcements",
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    return list(response.json()["reinforcements"])


async def _until(check: Any, timeout: float = 30.0) -> Any:
    for _ in range(int(timeout / 0.3)):
        if result := await check():
            return result
        await asyncio.sleep(0.3)
    raise AssertionError("condition not met in time")


async def _ask(settings: Settings, count: int, profession: str) -> None:
    async with EventPublisher(settings.broker_url, settings.namespace, f"centre:{CENTRE}") as c:
        await c.publish(
            ReinforcementRequested(
                centre_id=CENTRE,
                count=count,
                profession=profession,
                from_date=date.today() + timedelta(days=1),
            ),
            correlation_id=CENTRE,
        )


async def _centre_queue(settings: Settings) -> list[dict[str, Any]]:
    """What the centre's own queue holds (taken off it), as the centre reads it."""
    got = []
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel()
        name = centre_queue(settings.namespace, CENTRE).name(settings.namespace)
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            got.append(json.loads(message.body))
    return got


async def _accounts(settings: Settings) -> tuple[str, str]:
    store = await open_store(settings)
    try:
        _, ars = await store.add("l.kerouac@ars.fr", "L. Kerouac", Role.ARS, "53")
        _, staff = await store.add("accueil@rennes-vie.fr", "Accueil", Role.CENTRE, CENTRE)
    finally:
        await store.close()
    return ars, staff


async def _as_person(settings: Settings, login: str, password: str, steps: Any) -> Any:
    """Runs ``steps(browser)`` logged in to the console (the pages the people use)."""
    app = create_app(settings, listen=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://console", follow_redirects=True
        ) as browser:
            login_page = await log_in(browser, login, password)
            assert login_page.status_code == 303, login_page.text[:500]
            return await steps(browser)


async def test_a_request_granted_on_the_ars_page_is_told_to_the_centre_and_another_raised_again(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre(CENTRE), correlation_id=CENTRE)
    await _ask(s, 2, "infirmiers")
    [asked] = await _until(lambda: _requests(processes, s))
    assert asked["state"] == "requested" and asked["state_label"] == "en attente de réponse"

    console_settings = s.model_copy(
        update={f"{name}_http_port": port for name, port in processes.ports.items()}
    )
    ars_password, centre_password = await _accounts(console_settings)

    async def grant(browser: httpx.AsyncClient) -> str:
        page = await browser.get("/territoire")
        assert "Accorder" in page.text and "Prendre en compte" in page.text
        answered = await browser.post(
            "/territoire/renfort/accorder",
            data={
                "csrf": csrf_of(page.text),
                "demande": asked["request_id"],
                "centre_id": CENTRE,
                "boxes": "1",
                "personnels": "2",
                "heures": "35",
                "note": "deux infirmiers de l'hôpital",
            },
        )
        assert answered.status_code == 200, answered.text[:500]
        return answered.text

    said = await _as_person(console_settings, "l.kerouac@ars.fr", ars_password, grant)
    assert f"Renfort accordé à {CENTRE}." in said

    async def granted() -> dict[str, Any] | None:
        [row] = await _requests(processes, s)
        return row if row["state"] == "granted" else None

    row = await _until(granted)
    assert row["granted"] == {"boxes": 1, "staff": 2, "hours": 35}

    # The centre's own queue says so, in French.
    told = await _until(lambda: _centre_queue(s))
    [answer] = [m for m in told if m["type"] == "reinforcement.granted"]
    assert answer["data"]["request_id"] == asked["request_id"]
    assert answer["data"]["message"] == (
        "L'ARS accorde votre demande de renfort (2 infirmiers) : 1 box, 2 personnels, "
        "35 heures. Précisions : deux infirmiers de l'hôpital"
    )

    # ... and so does its page.
    async def read_page(browser: httpx.AsyncClient) -> str:
        return (await browser.get("/centre")).text

    centre_page = await _as_person(
        console_settings, "accueil@rennes-vie.fr", centre_password, read_page
    )
    assert "Vos demandes de renfort" in centre_page
    assert "accordée" in centre_page
    assert "l'ARS vous accorde 1 box, 2 personnel(s), 35 heure(s)" in centre_page

    # A second request, left unanswered: raised again to the ARS after two hours, once.
    async with Tap(s.broker_url, s.namespace, "reinforcement.raised_again.*") as tap:
        await _ask(s, 1, "médecin")
        rows = await _until(lambda: _requests_if(processes, s, lambda rs: len(rs) == 2 and rs))
        second = next(r for r in rows if r["state"] == "requested")
        database = Database(s.database_url(ServiceName.SCHEDULER))
        try:
            assert await raise_unanswered(database, utcnow() + timedelta(minutes=119)) == 0
            later = utcnow() + timedelta(hours=2, minutes=1)
            assert await raise_unanswered(database, later) == 1
            assert await raise_unanswered(database, later + timedelta(hours=3)) == 0
        finally:
            await database.engine.dispose()
        await tap.wait_for(
            lambda es: any(e.type == "reinforcement.raised_again" for e in es), timeout=30
        )
        await asyncio.sleep(0.5)  # room for a wrong second one
    [raised] = tap.of_type("reinforcement.raised_again")
    assert raised.data["request_id"] == second["request_id"]
    assert raised.data["departement"] == "35"
    [again] = [r for r in await _requests(processes, s) if r["request_id"] == second["request_id"]]
    assert again["raised_again_at"] is not None and again["state"] == "requested"


async def _requests_if(processes: ServiceProcesses, settings: Settings, check: Any) -> Any:
    return check(await _requests(processes, settings))
