"""The delivery guarantees of shared.consumer and shared.outbox, on the real broker
and both databases: inbox idempotency, dead letters with the error, bounded retry,
outbox atomicity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from sqlalchemy import func, select

from services.notifier.store.tables import contacts
from shared.consumer import Delivery
from shared.events import Envelope, NotificationSent, PatientContact, RecipientKind
from shared.messaging_tables import outbox
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from tests.helpers import Tap, dead_letters, running

CONTACT = PatientContact(
    referral_id="r-1", patient_ref="pat-1", first_name="A", last_name="B", phone=None
)


@pytest.fixture(params=["sqlite", "postgres"])
async def runtime_settings(request: Any, settings: Settings, postgres: Any) -> Settings:
    if request.param == "postgres":
        return settings.model_copy(
            update={"notifier_database_url": await postgres.create("notifier")}
        )
    return settings


class Probe:
    """A handler that stores the contact and emits an event, failing on demand."""

    def __init__(self, fail_times: int = 0) -> None:
        self.calls = 0
        self.fail_times = fail_times

    async def __call__(self, delivery: Delivery) -> None:
        self.calls += 1
        contact = delivery.payload_as(PatientContact)
        # The referrer it now carries goes to the notifier's referrers table, not here.
        row = contact.model_dump(exclude={"referrer", "corrected"})
        await delivery.session.execute(contacts.insert().values(**row))
        await delivery.emit(
            NotificationSent(
                notification_id=f"n-{contact.referral_id}",
                referral_id=contact.referral_id,
                recipient_kind=RecipientKind.PATIENT,
                recipient=contact.patient_ref,
                channel="record",
                template="probe",
            )
        )
        if self.calls <= self.fail_times:
            raise LookupError("not known yet")  # after the writes: all roll back


async def _running(settings: Settings, probe: Probe) -> AsyncIterator[ServiceRuntime]:
    runtime = ServiceRuntime(ServiceName.NOTIFIER, settings, "services.notifier:migrations")
    runtime.consume("contacts", probe)
    async with running(runtime):
        yield runtime


async def _count(runtime: ServiceRuntime, table: Any) -> int:
    async with runtime.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_duplicate_event_is_processed_once(runtime_settings: Settings) -> None:
    probe = Probe()
    async for runtime in _running(runtime_settings, probe):
        async with (
            Tap(runtime_settings.broker_url, runtime_settings.namespace, "notification.#") as tap,
            EventPublisher(runtime_settings.broker_url, runtime_settings.namespace, "t") as pub,
        ):
            envelope = Envelope.wrap(CONTACT, source="intake", correlation_id="r-1")
            for _ in range(3):
                await pub.publish_envelope(envelope, "contact.notifier")
            await tap.wait_for(lambda es: len(es) >= 1)
            await asyncio.sleep(1.0)  # room for a wrong second publication to show up
            assert len(tap.of_type("notification.sent")) == 1
            assert probe.calls == 1
            assert await _count(runtime, contacts) == 1
            sent = tap.of_type("notification.sent")[0]
            assert sent.causation_id == envelope.id and sent.correlation_id == "r-1"


async def test_poison_messages_are_dead_lettered_and_the_queue_keeps_flowing(
    runtime_settings: Settings,
) -> None:
    probe = Probe()
    s = runtime_settings
    async for runtime in _running(s, probe):
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            await pub.publish_raw(b"\xff not json", "contact.notifier", message_id="m-notjson")
            wrong = Envelope(
                type="patient.contact", source="t", correlation_id="x", data={"referral_id": 3}
            )
            await pub.publish_envelope(wrong, "contact.notifier")
            good = Envelope.wrap(CONTACT, source="intake", correlation_id="r-1")
            await pub.publish_envelope(good, "contact.notifier")
        letters = await dead_letters(s.broker_url, s.namespace, "notifier", expected=2)
        by_code = {m.headers["x-error-code"]: m for m in letters}
        assert set(by_code) == {"invalid_envelope", "invalid_payload"}
        assert by_code["invalid_envelope"].body == b"\xff not json"
        assert by_code["invalid_envelope"].headers["x-original-routing-key"] == "contact.notifier"
        assert "referral_id" in str(by_code["invalid_payload"].headers["x-error"])
        for _ in range(50):
            if await _count(runtime, contacts) == 1:
                break
            await asyncio.sleep(0.1)
        assert await _count(runtime, contacts) == 1


async def test_temporary_failure_is_retried_then_succeeds(runtime_settings: Settings) -> None:
    probe = Probe(fail_times=2)  # max_deliveries is 3 in the test settings
    s = runtime_settings
    async for runtime in _running(s, probe):
        async with Tap(s.broker_url, s.namespace, "notification.#") as tap:
            async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
                await pub.publish(CONTACT, correlation_id="r-1")
            await tap.wait_for(lambda es: len(es) == 1)
        assert probe.calls == 3
        assert await _count(runtime, contacts) == 1
        async with runtime.database.transaction() as session:
            rows = (await session.execute(select(outbox.c.event_type))).all()
        # The two failed tries rolled back their outbox rows with everything else.
        assert [r.event_type for r in rows] == ["notification.sent"]


async def test_permanent_failure_is_dead_lettered_after_bounded_tries(
    runtime_settings: Settings,
) -> None:
    probe = Probe(fail_times=1000)
    s = runtime_settings
    async for runtime in _running(s, probe):
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            await pub.publish(CONTACT, correlation_id="r-1")
        [letter] = await dead_letters(s.broker_url, s.namespace, "notifier", expected=1)
        assert letter.headers["x-error-code"] == "retries_exhausted"
        assert "not known yet" in str(letter.headers["x-error"])
        assert letter.headers["x-attempts"] == s.max_deliveries
        assert probe.calls == s.max_deliveries
        assert Envelope.model_validate_json(letter.body).payload() == CONTACT
        assert await _count(runtime, contacts) == 0
        assert await _count(runtime, outbox) == 0


async def test_graceful_shutdown_finishes_the_messages_in_hand(settings: Settings) -> None:
    """A stop in the middle of handling waits for the handler, commits, acks, relays."""
    started = asyncio.Event()

    class Slow(Probe):
        async def __call__(self, delivery: Delivery) -> None:
            started.set()
            await asyncio.sleep(1.5)
            await super().__call__(delivery)

    probe = Slow()
    runtime = ServiceRuntime(ServiceName.NOTIFIER, settings, "services.notifier:migrations")
    runtime.consume("contacts", probe)
    app = runtime.app()
    await app.start()
    s = settings
    async with Tap(s.broker_url, s.namespace, "notification.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            await pub.publish(CONTACT, correlation_id="r-1")
        await asyncio.wait_for(started.wait(), 10)
        stop = asyncio.create_task(app.stop())  # while the handler sleeps
        for _ in range(1000):
            if runtime.draining:
                break
            await asyncio.sleep(0.01)
        # Not ready from the first moment (a load balancer stops sending), the
        # delivery still in hand.
        assert not await runtime._consumers_ready() and probe.calls == 0
        await stop
        # The event it committed was relayed before the connection closed.
        await tap.wait_for(lambda es: len(es) == 1, timeout=10)
    assert probe.calls == 1
    # Nothing left to redeliver: the message was acked, not abandoned.
    connection = await aio_pika.connect(s.broker_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{s.namespace}.notifier.contacts", passive=True)
        assert queue.declaration_result.message_count == 0


def _after(gate: asyncio.Event, publish: Any) -> Any:
    """The relay's publish, held until ``gate`` opens: a broker slower than the work."""

    async def held(event: Any) -> None:
        await gate.wait()
        await publish(event)

    return held


async def test_consumers_pause_while_the_relay_is_far_behind(runtime_settings: Settings) -> None:
    """A relay that cannot keep up stops the consumers at the high-water mark: the
    backlog stays in the queue (ready, for any replica) instead of the outbox table,
    and everything flows once the relay catches up."""
    s = runtime_settings.model_copy(update={"outbox_high_water": 4, "prefetch": 1})
    probe = Probe()
    gate = asyncio.Event()
    async for runtime in _running(s, probe):
        runtime.relay._publish = _after(gate, runtime.relay._publish)
        async with Tap(s.broker_url, s.namespace, "notification.#") as tap:
            async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
                for i in range(20):
                    contact = CONTACT.model_copy(update={"referral_id": f"r-{i}"})
                    await pub.publish(contact, correlation_id=f"r-{i}")
            for _ in range(50):
                if probe.calls >= 4:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # room for a wrong fifth to be handled
            assert probe.calls == 4
            assert runtime.relay.backlog == 4
            connection = await aio_pika.connect(s.broker_url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(
                    f"{s.namespace}.notifier.contacts", passive=True
                )
                # 15 ready; the 16th is the one in hand, waiting for room.
                assert queue.declaration_result.message_count == 15
            gate.set()
            await tap.wait_for(lambda es: len(es) == 20, timeout=30)
        assert probe.calls == 20
        assert await _count(runtime, contacts) == 20
        assert runtime.relay.backlog == 0
