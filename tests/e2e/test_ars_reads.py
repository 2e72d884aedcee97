"""What the ARS reads is kept by the service that owns it, not by a page: a
reinforcement request sent while no console was open is listed when one opens; an
alert is raised once per département and cause while it lasts, and cleared when it
ends; a suspended centre shows the boxes it was last given."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from aiguillage.console.app import create_app
from aiguillage.console.people import open_store
from aiguillage.demo import wait_for_consumers
from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.events import (
    CentreCapacityChanged,
    CentreSuspended,
    ReinforcementRequested,
)
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.console_session import log_in
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e


async def _scheduler(processes: ServiceProcesses, settings: Settings, path: str) -> dict[str, Any]:
    token = issue_token(settings, Role.ARS, "53", ServiceName.SCHEDULER)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"http://127.0.0.1:{processes.ports['scheduler']}{path}",
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def _until(check: Any, timeout: float = 30.0) -> Any:
    for _ in range(int(timeout / 0.3)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError("condition not met in time")


async def test_a_reinforcement_request_sent_with_the_console_closed_is_listed_when_it_opens(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre("rennes-renfort"), correlation_id="rennes-renfort")

    async def active() -> bool:
        body = await _scheduler(processes, s, "/territory/35")
        return any(c["centre_id"] == "rennes-renfort" for c in body["centres"])

    await _until(active)
    async with EventPublisher(s.broker_url, s.namespace, "centre:rennes-renfort") as c:
        await c.publish(
            ReinforcementRequested(
                centre_id="rennes-renfort",
                count=2,
                profession="infirmiers",
                from_date=date.today() + timedelta(days=1),
            ),
            correlation_id="rennes-renfort",
        )

    async def listed() -> list[dict[str, Any]]:
        body = await _scheduler(processes, s, "/reinforcements")
        return list(body["reinforcements"])

    [request] = await _until(listed)
    assert request["centre_id"] == "rennes-renfort" and request["count"] == 2

    # A console opened afterwards shows it: it reads the scheduler, not its memory
    # (``listen=False``: this console never heard the event).
    console_settings = s.model_copy(
        update={f"{name}_http_port": port for name, port in processes.ports.items()}
    )
    # An ARS officer of Bretagne (région 53): rennes-renfort is in Ille-et-Vilaine.
    store = await open_store(console_settings)
    try:
        _, password = await store.add("b.morvan@ars.fr", "B. Morvan", Role.ARS, "53")
    finally:
        await store.close()
    app = create_app(console_settings, listen=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://console", follow_redirects=True
        ) as browser:
            login = await log_in(browser, "b.morvan@ars.fr", password)
            assert login.status_code == 303, login.text[:500]
            page = await browser.get("/territoire")
    assert "rennes-renfort demande 2 infirmiers" in page.text


async def test_one_alert_per_departement_and_cause_while_it_lasts_then_cleared(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with (
        Tap(s.broker_url, s.namespace, "capacity.alert.*", "slot.assigned.*") as tap,
        EventPublisher(s.broker_url, s.namespace, "gp") as gp,
    ):
        # No centre yet: every patient waits, in one département.
        for i in range(5):
            await gp.publish(referral(f"wait-{i}"), correlation_id=f"wait-{i}")
        await tap.wait_for(lambda es: any(e.type == "capacity.alert" for e in es), timeout=40)
        await _until(lambda: _waiting(processes, s, 5), timeout=40)
        await asyncio.sleep(0.5)  # room for a wrong second alert to show up
        alerts = [e for e in tap.of_type("capacity.alert") if e.data["kind"] == "waiting_list"]
        assert len(alerts) == 1, [e.data for e in alerts]
        # A centre opens near them: the waiting list drains, the alert is cleared.
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            await ars.publish(centre("rennes-relais", boxes=4), correlation_id="rennes-relais")
        await tap.wait_for(
            lambda es: any(e.type == "capacity.alert" and e.data["cleared"] for e in es),
            timeout=40,
        )
    waiting_list = [
        e.data for e in tap.of_type("capacity.alert") if e.data["kind"] == "waiting_list"
    ]
    assert [a["cleared"] for a in waiting_list] == [False, True]
    overview = await _scheduler(processes, s, "/territory")
    [dep] = [d for d in overview["departements"] if d["departement"] == "35"]
    assert not [a for a in dep["alerts"] if a["kind"] == "waiting_list"]


async def _waiting(processes: ServiceProcesses, s: Settings, count: int) -> bool:
    body = await _scheduler(processes, s, "/territory/35")
    return bool(body["waiting"] == count)


async def test_a_suspended_centre_shows_the_boxes_it_was_last_given(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre("rennes-boxes", boxes=2), correlation_id="rennes-boxes")
        await ars.publish(
            CentreCapacityChanged(centre_id="rennes-boxes", boxes=6, from_date=date.today()),
            correlation_id="rennes-boxes",
        )
        await ars.publish(
            CentreSuspended(centre_id="rennes-boxes", reason="travaux"),
            correlation_id="rennes-boxes",
        )

    async def suspended() -> dict[str, Any] | None:
        body = await _scheduler(processes, s, "/territory/35")
        found = [c for c in body["centres"] if c["centre_id"] == "rennes-boxes"]
        return found[0] if found and found[0]["status"] == "suspended" else None

    row = await _until(suspended)
    assert row["boxes"] == 6
    assert row["today"]["capacity"] == 0  # it receives nobody while suspended
