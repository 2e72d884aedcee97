"""A Centre 15 regulator overrides regulation over HTTP, the four services running as
separate processes: an oriented patient escalated after their slot was booked frees
the slot and the centre is told; a held patient released to a centre gets a slot."""

from __future__ import annotations

import asyncio
from datetime import date

import aio_pika
import httpx
import pytest
from sqlalchemy import select

from aiguillage.commands.regulate import describe_trail, get_from_regulation
from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from services.scheduler.store.tables import bookings
from shared.auth import Role, issue_token
from shared.db import Database
from shared.events import Clinical, Envelope, RiskFactor
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import centre_queue
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e


async def _drain(url: str, name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(url)
    got = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            got.append(message)
    return got


async def _booked_appointments(settings: Settings) -> set[str]:
    scheduler = Database(f"sqlite+aiosqlite:///{settings.data_dir / 'scheduler.db'}")
    try:
        async with scheduler.transaction() as session:
            return set((await session.execute(select(bookings.c.appointment_id))).scalars())
    finally:
        await scheduler.dispose()


def _regulator(settings: Settings, processes: ServiceProcesses) -> httpx.AsyncClient:
    token = issue_token(settings, Role.CENTRE_15, "samu-35:DR-e2e", ServiceName.REGULATION)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{processes.ports['regulation']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


async def _open_centre(settings: Settings, centre_id: str) -> None:
    s = settings
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre(centre_id, "35238"), correlation_id=centre_id)
    # The scheduler knows the centre, and the notifier has declared the centre's queue.
    await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
    await wait_for_drain(s.broker_url, f"{s.namespace}.notifier.centres")


async def test_escalating_an_oriented_patient_frees_the_slot_and_tells_the_centre(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    keys = ("referral.regulated.*", "slot.assigned.*", "appointment.cancelled.*")
    async with Tap(s.broker_url, s.namespace, *keys, "notification.sent", "reply.#") as tap:
        await _open_centre(s, "rennes-ovr")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            await gp.publish(referral("ovr-1"), correlation_id="ovr-1")
        await tap.wait_for(lambda es: any(e.type == "slot.assigned" for e in es), timeout=60)
        [slot] = tap.of_type("slot.assigned")
        referral_id = slot.data["referral_id"]
        [oriented] = tap.of_type("referral.regulated")
        assert oriented.data["decision"] == "orient"
        assert await _booked_appointments(s) == {slot.data["appointment_id"]}

        async with _regulator(s, processes) as http:
            answer = await http.post(
                f"/referrals/{referral_id}/decision",
                json={"decision": "escalate", "comment": "called back: dyspnoea at rest"},
            )
        assert answer.status_code == 201, answer.text
        decision = answer.json()

        def told(es: list[Envelope]) -> bool:
            cancelled = [e for e in es if e.type == "appointment.cancelled"]
            statuses = {e.data["status"] for e in es if e.type == "referral.outcome"}
            return (
                bool(cancelled)
                and any(
                    e.type == "notification.sent"
                    and e.data["recipient_kind"] == "centre"
                    and e.causation_id == cancelled[0].id
                    for e in es
                )
                and {"escalated", "cancelled"} <= statuses
            )

        await tap.wait_for(told, timeout=60)
        await asyncio.sleep(0.5)  # room for a wrong second cancellation to show up

    # The regulator's decision, as the others received it.
    escalated = [e for e in tap.of_type("referral.regulated") if e.id == decision["event_id"]]
    assert [e.data["decision"] for e in escalated] == ["escalate"]
    assert escalated[0].data["decided_by"] == "DR-e2e"
    assert escalated[0].data["supersedes"] == oriented.data["decision_id"]

    # The scheduler cancelled the appointment, as the regulator's doing, and freed the slot.
    [cancelled] = tap.of_type("appointment.cancelled")
    assert cancelled.data["appointment_id"] == slot.data["appointment_id"]
    assert cancelled.data["cancelled_by"] == "regulator"
    assert cancelled.causation_id == escalated[0].id
    assert any(m.routing_key == "appointment.cancelled.rennes-ovr" for m in tap.messages)
    for _ in range(50):
        if not await _booked_appointments(s):
            break
        await asyncio.sleep(0.2)
    assert await _booked_appointments(s) == set(), "the slot is given back"

    # The centre is told: a notification recorded, and the cancellation on its own queue.
    [notice] = [
        e
        for e in tap.of_type("notification.sent")
        if e.data["recipient_kind"] == "centre" and e.causation_id == cancelled.id
    ]
    assert notice.data["recipient"] == "rennes-ovr"
    messages = await _drain(s.broker_url, centre_queue(s.namespace, "rennes-ovr").name(s.namespace))
    assert [m.routing_key for m in messages] == [
        "slot.assigned.rennes-ovr",
        "appointment.cancelled.rennes-ovr",
    ]
    assert Envelope.model_validate_json(messages[1].body).id == cancelled.id

    # The referrer hears of the escalation and of the cancelled appointment.
    statuses = {e.data["status"] for e in tap.of_type("referral.outcome")}
    assert {"appointment", "escalated", "cancelled"} <= statuses

    # The audit trail, as the command reads it from regulation's HTTP API.
    cli_settings = s.model_copy(update={"regulation_http_port": processes.ports["regulation"]})
    trail = await get_from_regulation(
        cli_settings, f"/referrals/{referral_id}/decisions", samu="samu-35"
    )
    assert [(d["decision"], d["decided_by"]) for d in trail["decisions"]] == [
        ("orient", "protocol"),
        ("escalate", "DR-e2e"),
    ]
    text = "\n".join(describe_trail(trail))
    assert "called back: dyspnoea at rest" in text and "regulator.escalate" in text


async def test_releasing_a_held_patient_to_a_centre_books_a_slot(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    # At risk (72, chronic respiratory disease) and no vitals: v1 holds it.
    held = referral("held-1", birth_date=date(1948, 2, 3)).model_copy(
        update={
            "clinical": Clinical(
                symptomatic=True,
                symptoms=("cough",),
                risk_factors=(RiskFactor.CHRONIC_RESPIRATORY,),
            )
        }
    )
    async with Tap(s.broker_url, s.namespace, "referral.regulated.*", "slot.assigned.*") as tap:
        await _open_centre(s, "rennes-hld")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            await gp.publish(held, correlation_id="held-1")
        await tap.wait_for(lambda es: len(es) == 1, timeout=60)
        [hold] = tap.of_type("referral.regulated")
        assert hold.data["decision"] == "hold"
        referral_id = hold.data["referral_id"]
        async with _regulator(s, processes) as http:
            queue = (await http.get("/held")).json()["held"]
            assert [c["referral_id"] for c in queue] == [referral_id]
            answer = await http.post(
                f"/referrals/{referral_id}/decision",
                json={"decision": "orient", "comment": "SpO2 95 % measured by the GP"},
            )
            assert answer.status_code == 201, answer.text
            await tap.wait_for(lambda es: any(e.type == "slot.assigned" for e in es), timeout=60)
            assert (await http.get("/held")).json()["held"] == []
    [slot] = tap.of_type("slot.assigned")
    assert slot.data["referral_id"] == referral_id
    assert slot.data["centre_id"] == "rennes-hld"
    # No priority named: the protocol's for a patient at risk.
    assert slot.data["priority"] == answer.json()["priority"] == "asap"
