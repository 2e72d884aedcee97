"""Each centre's own queue receives its own patients, and nothing of other centres."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aio_pika
import pytest

from aiguillage.commands.centre import listen_async
from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.events import Envelope
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import centre_queue
from tests.consultation_time import consultation_over
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


async def test_each_centre_queue_receives_exactly_its_own_patients(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with Tap(s.broker_url, s.namespace, "slot.assigned.*", "notification.sent") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            # Rennes and Paris: patients go to the centre of their own département.
            await ars.publish(centre("rennes-a", "35238"), correlation_id="rennes-a")
            await ars.publish(centre("paris-b", "75115"), correlation_id="paris-b")
        await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        await wait_for_drain(s.broker_url, f"{s.namespace}.notifier.centres")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            for i in range(4):
                await gp.publish(referral(f"r-{i}", insee="35238"), correlation_id=f"r-{i}")
            for i in range(3):
                await gp.publish(referral(f"p-{i}", insee="75115"), correlation_id=f"p-{i}")
        await tap.wait_for(
            lambda es: len([e for e in es if e.type == "slot.assigned"]) == 7, timeout=60
        )
    assigned = {e.data["appointment_id"]: e.data["centre_id"] for e in tap.of_type("slot.assigned")}
    for centre_id, expected in [("rennes-a", 4), ("paris-b", 3)]:
        messages = await _drain(
            s.broker_url, centre_queue(s.namespace, centre_id).name(s.namespace)
        )
        envelopes = [Envelope.model_validate_json(m.body) for m in messages]
        assert len(envelopes) == expected, centre_id
        assert {assigned[e.data["appointment_id"]] for e in envelopes} == {centre_id}
        assert all(m.routing_key == f"slot.assigned.{centre_id}" for m in messages)


async def test_the_centre_is_told_the_test_to_prescribe(
    settings: Settings, processes: ServiceProcesses
) -> None:
    """Regulation's test eligibility reaches the centre: in slot.assigned on its own
    queue, and in its appointment list (what the consultation is for)."""
    import httpx

    from shared.auth import Role, issue_token
    from shared.events import RiskFactor
    from shared.paris import in_paris

    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre("rennes-t", "35238"), correlation_id="rennes-t")
    await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
    plain = referral("t-plain")  # symptomatic, 40 years old, no risk factor
    at_risk = plain.model_copy(
        update={
            "reference": "t-risk",
            "clinical": plain.clinical.model_copy(
                update={"risk_factors": (RiskFactor.CHRONIC_RESPIRATORY,)}
            ),
        }
    )
    async with Tap(s.broker_url, s.namespace, "slot.assigned.*", "notification.sent") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            await gp.publish(at_risk, correlation_id="t-risk")
            await gp.publish(plain, correlation_id="t-plain")

        def both_told(es: list[Envelope]) -> bool:
            # The centre's notice is sent once the notifier has the appointment in its list.
            told = [e for e in es if e.type == "notification.sent"]
            return sum(e.data["recipient_kind"] == "centre" for e in told) == 2

        await tap.wait_for(both_told, timeout=60)
    messages = await _drain(s.broker_url, centre_queue(s.namespace, "rennes-t").name(s.namespace))
    on_queue = [Envelope.model_validate_json(m.body).data for m in messages]
    assert sorted(d["test_eligible"] for d in on_queue) == [False, True]
    [eligible] = [d for d in on_queue if d["test_eligible"]]
    assert eligible["priority"] == "asap"  # at risk: seen within hours

    token = issue_token(s, Role.CENTRE, "rennes-t", ServiceName.NOTIFIER)
    url = f"http://127.0.0.1:{processes.ports['notifier']}/centres/rennes-t/appointments"
    # The day of each, on the centre's clock (near midnight, one may be tomorrow's).
    days = {in_paris(datetime.fromisoformat(d["start"])).date().isoformat() for d in on_queue}
    listed = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        for day in days:
            listed += (await http.get(url, params={"day": day})).json()["appointments"]
    by_id = {a["appointment_id"]: a["test_eligible"] for a in listed}
    assert by_id == {d["appointment_id"]: d["test_eligible"] for d in on_queue}


async def test_centre_listen_prints_its_patients(
    settings: Settings, processes: ServiceProcesses, capsys: pytest.CaptureFixture[str]
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
        await ars.publish(centre("rennes-l", "35238"), correlation_id="rennes-l")
    await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
    listener = asyncio.create_task(listen_async(s, "rennes-l", count=2, timeout=60))
    await asyncio.sleep(1)
    async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
        for i in range(2):
            await gp.publish(referral(f"l-{i}", insee="35238"), correlation_id=f"l-{i}")
    assert await listener == 2
    out = capsys.readouterr().out
    assert out.count("NEW") == 2 and "pat-" in out


async def test_no_show_frees_the_slot_and_escalation_reaches_centre_15(
    settings: Settings, processes: ServiceProcesses
) -> None:
    import httpx
    from sqlalchemy import select

    from services.scheduler.store.tables import bookings
    from shared.auth import Role, issue_token
    from shared.db import Database

    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with Tap(s.broker_url, s.namespace, "slot.assigned.*", "reply.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            await ars.publish(centre("rennes-n", "35238"), correlation_id="rennes-n")
        await wait_for_drain(s.broker_url, f"{s.namespace}.scheduler.centres")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            await gp.publish(referral("n-1"), correlation_id="n-1")
            await gp.publish(referral("n-2"), correlation_id="n-2")
        await tap.wait_for(lambda es: len([e for e in es if e.type == "slot.assigned"]) == 2)
        first, second = (e.data for e in tap.of_type("slot.assigned"))
        token = issue_token(s, Role.CENTRE, "rennes-n", ServiceName.NOTIFIER)
        base = f"http://127.0.0.1:{processes.ports['notifier']}/centres/rennes-n/appointments"
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(50):  # the notifier records the appointment from slot.assigned
                listed = (await http.get(base)).json()["appointments"]
                if len(listed) == 2:
                    break
                await asyncio.sleep(0.2)
            # Before the slot's end, "absent" is refused at once, with why (issue 27).
            no_show = await http.post(
                f"{base}/{first['appointment_id']}/outcome", json={"outcome": "no_show"}
            )
            assert no_show.status_code == 409
            assert no_show.json()["error_code"] == "no_show_before_end"
            await consultation_over(s.data_dir, first["appointment_id"])
            no_show = await http.post(
                f"{base}/{first['appointment_id']}/outcome", json={"outcome": "no_show"}
            )
            assert no_show.status_code == 202
            escalated = await http.post(
                f"{base}/{second['appointment_id']}/outcome",
                json={"outcome": "escalated", "reason": "SpO2 86 %"},
            )
            assert escalated.status_code == 202

        def told(es: list[Envelope]) -> bool:
            statuses = {
                (e.data.get("status"), e.data.get("reply_to"))
                for e in es
                if e.type == "referral.outcome"
            }
            return {
                ("no_show", "tests"),
                ("escalated_by_centre", "samu-35"),
                ("escalated_by_centre", "tests"),
            } <= statuses

        await tap.wait_for(told, timeout=30)
    assert any(m.routing_key == "reply.samu-35.referral.outcome" for m in tap.messages)
    scheduler = Database(f"sqlite+aiosqlite:///{s.data_dir / 'scheduler.db'}")
    try:
        for _ in range(50):
            async with scheduler.transaction() as session:
                held = set((await session.execute(select(bookings.c.appointment_id))).scalars())
            if not held:
                break
            await asyncio.sleep(0.2)
    finally:
        await scheduler.dispose()
    assert held == set(), "no-show and escalation give their slots back"
