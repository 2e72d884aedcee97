"""The ARS's on-call hears of a département's saturation (issue 30): the scheduler, as a
process, raises it when a booking fills its next 24 hours past the threshold, and the
notifier, as a process, e-mails and texts the département's on-call contact once (a
real SMTP server, an SMS gateway over HTTP); another beginning within the hour sends
nothing, its end one of each, and a beginning past the hour one again.

The clock is the alerts' own: the hour is counted on each alert's time (its envelope's),
so the later alerts are published as the scheduler publishes them, dated by the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import aio_pika
import pytest

from aiguillage.processes import ServiceProcesses
from shared.events import AlertKind, CapacityAlert, Envelope
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import SUBSCRIPTIONS
from tests.helpers import Tap, centre, oriented
from tests.integration.test_notifier import Gateway, Mailbox, gateway, mailbox

__all__ = ["gateway", "mailbox"]  # the fixtures: a real SMTP server, an SMS gateway

pytestmark = pytest.mark.e2e

ON_CALL = {"35": [{"email": "astreinte-35@ars.example", "phone": "+33611223344"}]}
RUNNING = (ServiceName.SCHEDULER, ServiceName.NOTIFIER)


@pytest.fixture
async def two_services(
    settings: Settings,
    tmp_path: Path,
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> AsyncIterator[ServiceProcesses]:
    """The scheduler and the notifier as processes, the notifier's channels the sinks."""
    procs = ServiceProcesses(
        {
            "AIGUILLAGE_ENVIRONMENT": settings.environment.value,
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
            "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.2",
            "AIGUILLAGE_AUTH_SECRET": settings.auth_secret,
            # One booked place of a centre's 144 a day saturates the département.
            "AIGUILLAGE_SATURATION_THRESHOLD": "0.005",
            "AIGUILLAGE_SMTP_HOST": "127.0.0.1",
            "AIGUILLAGE_SMTP_PORT": str(mailbox[1]),
            "AIGUILLAGE_SMS_GATEWAY_URL": f"http://127.0.0.1:{gateway[1]}/sms",
            "AIGUILLAGE_ONCALL_CONTACTS": json.dumps(ON_CALL),
        },
        tmp_path / "logs",
    )
    await asyncio.to_thread(procs.start, *RUNNING)
    try:
        await _consuming(settings)
        yield procs
    finally:
        await asyncio.to_thread(procs.stop)
        for service in RUNNING:  # shown by pytest when the test failed
            print(f"--- {service.value} log ---\n{procs.log(service)[-3000:]}")


async def _consuming(settings: Settings, timeout: float = 60.0) -> None:
    """Every queue of the two services has its consumer."""
    names = [spec.name(settings.namespace) for s in RUNNING for spec in SUBSCRIPTIONS[s]]
    connection = await aio_pika.connect(settings.broker_url)
    try:
        for _ in range(int(timeout / 0.2)):
            counts = []
            for name in names:
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    counts.append(queue.declaration_result.consumer_count)
                    await channel.close()
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    counts.append(0)
            if all(counts):
                return
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    raise TimeoutError("the scheduler and the notifier are not consuming")


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not in time")


async def _as_scheduler(
    pub: EventPublisher, kind: AlertKind, at: datetime, *, cleared: bool = False
) -> None:
    """An alert of département 35, as the scheduler publishes it, dated ``at``."""
    alert = CapacityAlert(
        departement="35",
        kind=kind,
        occupancy_next_24h=0.0 if cleared else 0.95,
        booked_next_24h=0 if cleared else 137,
        capacity_next_24h=144,
        waiting=0 if cleared else 3,
        threshold=0.005,
        cleared=cleared,
    )
    envelope = Envelope.wrap(alert, source="scheduler", correlation_id="departement-35", time=at)
    await pub.publish_envelope(envelope, alert.routing_key(), exchange="events")


async def test_a_saturation_reaches_the_on_call_once_in_the_hour_and_its_end_once(
    settings: Settings,
    two_services: ServiceProcesses,
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> None:
    s, box, sms = settings, mailbox[0], gateway[0].sms

    def told(count: int) -> Callable[[], bool]:
        return lambda: len(box.delivered) == count and len(sms) == count

    async with (
        Tap(s.broker_url, s.namespace, "capacity.alert.*") as tap,
        EventPublisher(s.broker_url, s.namespace, "e2e") as pub,
    ):
        # The real thing: a centre of Rennes, one patient booked there, the scheduler
        # finds the département saturated and raises it.
        await pub.publish(centre("rennes-sat"), correlation_id="rennes-sat")
        await pub.publish(oriented("sat-1"), correlation_id="sat-1")
        [raised] = await tap.wait_for(lambda es: bool(es), timeout=30)
        assert raised.data["kind"] == "saturation" and not raised.data["cleared"]
        await _until(told(1))
        began = raised.time

        # Within the hour: the waiting list begins too; nothing is sent.
        await _as_scheduler(pub, AlertKind.WAITING_LIST, began + timedelta(minutes=30))
        # The saturation ends: told once, though the end is heard twice.
        ended = began + timedelta(minutes=45)
        await _as_scheduler(pub, AlertKind.SATURATION, ended, cleared=True)
        await _as_scheduler(pub, AlertKind.SATURATION, ended, cleared=True)
        await _until(told(2))
        # The waiting list's end: its beginning was not told, nor is its end.
        await _as_scheduler(pub, AlertKind.WAITING_LIST, ended, cleared=True)
        # A new saturation past the hour is told again.
        await _as_scheduler(pub, AlertKind.SATURATION, began + timedelta(minutes=61))
        await _until(told(3))
        await tap.wait_for(lambda es: len(es) == 6, timeout=10)  # all seen by the broker
        await asyncio.sleep(1.5)  # room for a wrong fourth (the dispatcher polls at 0.5 s)
    assert told(3)()
    mails = [message_from_bytes(m.content, policy=default) for m in box.delivered]
    assert [m.rcpt_tos for m in box.delivered] == [["astreinte-35@ars.example"]] * 3
    assert [m["Subject"] for m in mails] == [
        "Alerte saturation : Ille-et-Vilaine (35)",
        "Fin d'alerte saturation : Ille-et-Vilaine (35)",
        "Alerte saturation : Ille-et-Vilaine (35)",
    ]
    # The first is the scheduler's own figures: one place of the day's 143-144 booked.
    assert "(1/14" in mails[0].get_content()
    assert [m["to"] for m in sms] == ["+33611223344"] * 3
    assert sms[1]["text"] == "Aiguillage : fin de l'alerte saturation en Ille-et-Vilaine (35)."
    # Each message its own idempotency key (a resend after a crash would repeat it).
    assert len({m["id"] for m in sms}) == 3
