"""Issue 27, the four services as processes: a GP submits over HTTP, then withdraws over
HTTP with a reason from the list. The slot is free again (the scheduler's territory),
the centre's own queue receives the cancellation, the patient's SMS and the GP's
webhook say the GP withdrew, and why; withdrawing again answers the same state and
tells nobody anything twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI, Request

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from services.notifier.handlers.channels import signature
from shared.auth import Role, issue_token
from shared.events import Envelope
from shared.http import HttpServer
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import centre_queue
from tests.helpers import Tap, centre
from tests.strategies import valid_referral

pytestmark = pytest.mark.e2e

CENTRE = "rennes-retrait"
GP = "10001234567"


class Outside:
    """The SMS gateway and the GP's webhook receiver, over real HTTP: what the notifier
    really sent out."""

    def __init__(self) -> None:
        self.sms: list[dict[str, Any]] = []
        self.hooks: list[tuple[dict[str, Any], bytes, str]] = []
        self.app = FastAPI()

        @self.app.post("/sms")
        async def sms(request: Request) -> dict[str, str]:
            self.sms.append(await request.json())
            return {"status": "queued"}

        @self.app.post("/hook")
        async def hook(request: Request) -> dict[str, str]:
            body = await request.body()
            signed = request.headers.get("x-aiguillage-signature", "")
            self.hooks.append((json.loads(body), body, signed))
            return {"status": "ok"}


@pytest.fixture
async def outside() -> AsyncIterator[tuple[Outside, int]]:
    fake = Outside()
    server = HttpServer(fake.app, "127.0.0.1", 0)
    await server.start()
    try:
        yield fake, server.port
    finally:
        await server.stop()


@pytest.fixture
def services(
    settings: Settings, tmp_path: Path, outside: tuple[Outside, int]
) -> Iterator[ServiceProcesses]:
    """The four services (as tests/e2e/conftest.py starts them), the patients told by
    SMS through the fake gateway."""
    procs = ServiceProcesses(
        {
            "AIGUILLAGE_ENVIRONMENT": settings.environment.value,
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
            "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.2",
            "AIGUILLAGE_AUTH_SECRET": settings.auth_secret,
            "AIGUILLAGE_PATIENT_CHANNELS": "sms",
            "AIGUILLAGE_SMS_GATEWAY_URL": f"http://127.0.0.1:{outside[1]}/sms",
        },
        tmp_path / "logs",
    )
    procs.start()
    try:
        yield procs
    finally:
        procs.stop()
        for service in ServiceName:  # shown by pytest when the test failed
            print(f"--- {service.value} log ---\n{procs.log(service)[-3000:]}")


def _client(s: Settings, procs: ServiceProcesses, service: str, role: Role, who: str) -> Any:
    token = issue_token(s, role, who, ServiceName(service))
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{procs.ports[service]}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


async def _booked(s: Settings, procs: ServiceProcesses) -> int:
    """Places booked today and tomorrow in Ille-et-Vilaine, as the ARS reads them."""
    async with _client(s, procs, "scheduler", Role.ARS, "53") as ars:
        body = (await ars.get("/territory/35")).json()
    return sum(c["today"]["booked"] + c["tomorrow"]["booked"] for c in body["centres"])


async def _until(what: str, check: Any, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.2)


async def _centre_queue(s: Settings) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(s.broker_url)
    got = []
    async with connection:
        channel = await connection.channel()
        name = centre_queue(s.namespace, CENTRE).name(s.namespace)
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            got.append(message)
    return got


async def test_a_gp_withdraws_over_http_and_everyone_is_told_once(
    settings: Settings, services: ServiceProcesses, outside: tuple[Outside, int]
) -> None:
    s, (told, port) = settings, outside
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre(CENTRE, "35238"), correlation_id=CENTRE)
    await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
    await wait_for_drain(s.broker_url, f"{s.namespace}.notifier.centres")
    referral = valid_referral("retrait-e2e")
    # Development: an unregistered GP is told at the webhook it names.
    referral["referrer"]["webhook_url"] = f"http://127.0.0.1:{port}/hook"

    taps = ("referral.cancelled", "appointment.cancelled.*", "slot.assigned.*")
    async with (
        Tap(s.broker_url, s.namespace, *taps) as tap,
        _client(s, services, "intake", Role.REFERRER, f"gp:{GP}") as gp,
    ):
        created = await gp.post("/referrals", json=referral)
        assert created.status_code == 201, created.text
        referral_id = created.json()["referral_id"]
        await tap.wait_for(lambda es: any(e.type == "slot.assigned" for e in es), timeout=60)
        await _until("appointment SMS", lambda: len(told.sms) == 1)
        assert await _booked(s, services) == 1

        withdrawn = await gp.post(
            f"/referrals/{referral_id}/withdraw", json={"reason": "patient_recovered"}
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["status"] == "cancelled"
        assert withdrawn.json()["detail"]["by"] == "referrer"
        await _until("withdrawal SMS", lambda: len(told.sms) == 2)
        await _until(
            "withdrawal webhook",
            lambda: any(h[0]["status"] == "cancelled" for h in told.hooks),
        )
        # Again: the same state, and nothing sent twice (given time to be).
        again = await gp.request(
            "DELETE", f"/referrals/{referral_id}", json={"reason": "patient_recovered"}
        )
        assert (again.status_code, again.json()) == (200, withdrawn.json())
        await asyncio.sleep(3)
        status = (await gp.get(f"/referrals/{referral_id}")).json()

    # The slot is free again.
    assert await _booked(s, services) == 0
    [cancel] = tap.of_type("referral.cancelled")
    [cancelled] = tap.of_type("appointment.cancelled")
    [slot] = tap.of_type("slot.assigned")
    assert cancel.data["reason_code"] == "patient_recovered"
    assert cancelled.data["appointment_id"] == slot.data["appointment_id"]
    assert (cancelled.data["cancelled_by"], cancelled.data["reason_code"]) == (
        "referrer",
        "patient_recovered",
    )
    # The centre's own queue: its patient, then the cancellation, who and why.
    messages = await _centre_queue(s)
    assert [m.routing_key for m in messages] == [
        f"slot.assigned.{CENTRE}",
        f"appointment.cancelled.{CENTRE}",
    ]
    on_queue = Envelope.model_validate_json(messages[1].body).data
    assert (on_queue["cancelled_by"], on_queue["reason_code"]) == ("referrer", "patient_recovered")
    # The patient's SMS: the appointment, then that whoever referred them withdrew it.
    assert len(told.sms) == 2
    assert "votre médecin a retiré sa demande" in told.sms[1]["text"]
    # The GP's webhook, signed: cancelled, by the referrer, with the reason.
    withdrawals = [h for h in told.hooks if h[0]["status"] == "cancelled"]
    [(hook, body, signed)] = withdrawals
    assert signed == signature(s.webhook_secret, body)
    assert hook["referral_id"] == referral_id
    assert hook["detail"]["by"] == "referrer"
    assert hook["detail"]["reason_code"] == "patient_recovered"
    assert hook["detail"]["reason"] == "le patient va mieux"
    # The status says it too, and nothing came of the second withdrawal.
    assert status["status"] == "cancelled" and status["final"] is True
    assert status["detail"] == withdrawn.json()["detail"]
    assert [h["status"] for h in status["history"]].count("withdrawn") == 1
