"""Group commit (shared.consumer), on the real broker and both databases: the
deliveries a consumer holds are handled in one transaction, each effect and event
exactly once, and one bad delivery fails none of the others of its batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from services.notifier.store.tables import contacts
from shared.consumer import Delivery
from shared.db import Database
from shared.events import Envelope, NotificationSent, PatientContact, RecipientKind
from shared.messaging_tables import inbox, outbox
from shared.migrations import upgrade
from shared.outbox import OutboxRelay, OutgoingEvent, add_to_outbox
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.topology import declare_topology
from tests.helpers import Tap, dead_letters, running

BURST = 60


@pytest.fixture(params=["sqlite", "postgres"])
async def batch_settings(request: Any, settings: Settings, postgres: Any) -> Settings:
    update: dict[str, Any] = {"prefetch": 32, "batch_max": 32, "batch_window_ms": 5.0}
    if request.param == "postgres":
        update["notifier_database_url"] = await postgres.create("notifier")
    return settings.model_copy(update=update)


def contact(i: int) -> PatientContact:
    return PatientContact(
        referral_id=f"r-{i}", patient_ref=f"pat-{i}", first_name="A", last_name="B", phone=None
    )


class Probe:
    """Stores the contact and emits one event; always fails for the referrals given."""

    def __init__(self, poisoned: frozenset[str] = frozenset()) -> None:
        self.calls: dict[str, int] = {}
        self.poisoned = poisoned

    async def __call__(self, delivery: Delivery) -> None:
        payload = delivery.payload_as(PatientContact)
        self.calls[payload.referral_id] = self.calls.get(payload.referral_id, 0) + 1
        row = payload.model_dump(exclude={"referrer", "corrected"})
        await delivery.session.execute(contacts.insert().values(**row))
        await delivery.emit(
            NotificationSent(
                notification_id=f"n-{payload.referral_id}",
                referral_id=payload.referral_id,
                recipient_kind=RecipientKind.PATIENT,
                recipient=payload.patient_ref,
                channel="record",
                template="probe",
            )
        )
        if payload.referral_id in self.poisoned:
            raise LookupError("never known")  # after the writes: they must roll back


async def _held_then_started(
    settings: Settings, probe: Probe, envelopes: list[Envelope]
) -> AsyncIterator[ServiceRuntime]:
    """The messages wait in the queue before the service starts: it receives a prefetch
    of them at once, as in a burst."""
    async with EventPublisher(settings.broker_url, settings.namespace, "t") as pub:
        for envelope in envelopes:
            await pub.publish_envelope(envelope, "contact.notifier")
    runtime = ServiceRuntime(ServiceName.NOTIFIER, settings, "services.notifier:migrations")
    runtime.consume("contacts", probe)
    async with running(runtime):
        yield runtime


async def _count(runtime: ServiceRuntime, table: Any) -> int:
    async with runtime.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_burst_is_committed_in_batches_each_effect_once(batch_settings: Settings) -> None:
    s = batch_settings
    probe = Probe()
    envelopes = [
        Envelope.wrap(contact(i), source="intake", correlation_id=f"r-{i}") for i in range(BURST)
    ]
    await declare_topology(s.broker_url, s.namespace)
    async with Tap(s.broker_url, s.namespace, "notification.#") as tap:
        async for runtime in _held_then_started(s, probe, envelopes):
            await tap.wait_for(lambda es: len(es) >= BURST, timeout=30)
            await asyncio.sleep(0.5)  # room for a wrong second publication
            [consumer] = runtime.consumers
            # Far fewer transactions than deliveries: batches of several.
            assert 1 <= consumer.batches <= BURST // 4
            assert await _count(runtime, contacts) == BURST
            assert await _count(runtime, inbox) == BURST
            async with runtime.database.transaction() as session:
                staged = (await session.execute(select(outbox.c.body).order_by(outbox.c.seq))).all()
    assert probe.calls == {f"r-{i}": 1 for i in range(BURST)}
    sent = tap.of_type("notification.sent")
    assert len(sent) == BURST
    by_cause = {e.causation_id: e for e in sent}
    assert set(by_cause) == {e.id for e in envelopes}
    for original in envelopes:
        assert by_cause[original.id].correlation_id == original.correlation_id
    # One outbox statement per batch kept the events in the order they were handled.
    order = [Envelope.model_validate_json(row.body).payload_as(NotificationSent) for row in staged]
    assert sorted(int(n.referral_id[2:]) for n in order) == list(range(BURST))


async def test_one_bad_delivery_fails_none_of_its_batch(batch_settings: Settings) -> None:
    """The batch is rolled back and replayed one by one: the good deliveries commit once
    (no event of the rolled-back batch leaves), the bad one is retried and dead-lettered
    on its own."""
    s = batch_settings
    probe = Probe(poisoned=frozenset({"r-7"}))
    envelopes = [
        Envelope.wrap(contact(i), source="intake", correlation_id=f"r-{i}") for i in range(20)
    ]
    # The same event twice in the batch, as a publisher retrying after a lost confirm.
    envelopes.append(envelopes[3])
    await declare_topology(s.broker_url, s.namespace)
    async with Tap(s.broker_url, s.namespace, "notification.#") as tap:
        async for runtime in _held_then_started(s, probe, envelopes):
            [letter] = await dead_letters(s.broker_url, s.namespace, "notifier", expected=1)
            await tap.wait_for(lambda es: len(es) >= 19, timeout=30)
            await asyncio.sleep(0.5)
            assert await _count(runtime, contacts) == 19
            assert await _count(runtime, outbox) == 19
    assert letter.headers["x-error-code"] == "retries_exhausted"
    assert Envelope.model_validate_json(letter.body).payload_as(PatientContact).referral_id == "r-7"
    sent = tap.of_type("notification.sent")
    assert sorted(e.payload_as(NotificationSent).referral_id for e in sent) == sorted(
        f"r-{i}" for i in range(20) if i != 7
    )
    assert probe.calls["r-7"] == s.max_deliveries + 1  # once in the batch, then each try alone
    assert probe.calls["r-3"] in (1, 2)  # its batch may have been the rolled-back one


async def test_one_transaction_per_delivery_when_batches_are_off(settings: Settings) -> None:
    s = settings.model_copy(update={"batch_max": 1})
    probe = Probe()
    envelopes = [
        Envelope.wrap(contact(i), source="intake", correlation_id=f"r-{i}") for i in range(10)
    ]
    await declare_topology(s.broker_url, s.namespace)
    async with Tap(s.broker_url, s.namespace, "notification.#") as tap:
        async for runtime in _held_then_started(s, probe, envelopes):
            await tap.wait_for(lambda es: len(es) >= 10, timeout=30)
            assert runtime.consumers[0].batches == 0
            assert await _count(runtime, contacts) == 10


async def test_a_replica_relays_what_another_committed_at_once(postgres: Any) -> None:
    """On PostgreSQL the commit wakes every relay (LISTEN/NOTIFY): a replica relays an
    event another process staged without waiting for its poll (30 s here)."""
    url = await postgres.create("notifier")
    database, other = Database(url), Database(url)
    await upgrade(database, "services.notifier:migrations")
    published: list[OutgoingEvent] = []
    arrived = asyncio.Event()

    async def publish(event: OutgoingEvent) -> None:
        published.append(event)
        arrived.set()

    replica = OutboxRelay(database, publish, poll_seconds=30)
    replica.start()
    try:
        await asyncio.sleep(0.5)  # listening
        before = replica.woken_by_database
        # Staged and committed by "another process": nothing calls replica.notify().
        async with other.transaction() as session:
            staged = await add_to_outbox(session, contact(1), source="intake", correlation_id="r-1")
        await asyncio.wait_for(arrived.wait(), 2)
        assert [e.event_id for e in published] == [staged.id]
        assert replica.woken_by_database == before + 1
        # Its own process's commits wake it in-process (notify), not a second time.
        async with database.transaction() as session:
            await add_to_outbox(session, contact(2), source="intake", correlation_id="r-2")
        replica.notify()
        await asyncio.sleep(0.5)
        assert len(published) == 2
        assert replica.woken_by_database == before + 1
    finally:
        await replica.stop()
        await database.dispose()
        await other.dispose()


async def test_a_batch_is_handled_in_its_lock_order(batch_settings: Settings) -> None:
    """A consumer given a lock order handles each batch's deliveries in that order
    (stable: equal keys keep their arrival order), so that two replicas' batches lock
    the same rows in the same order; each delivery still once, and answered as its own."""
    s = batch_settings
    seen: list[tuple[int, str, int]] = []  # (batch, key, arrival index)
    sessions: list[Any] = []  # each batch's session, kept alive: its place is the batch

    def key(envelope: Envelope) -> str:
        return "abc"[int(envelope.data["referral_id"][2:]) % 3]

    async def handler(delivery: Delivery) -> None:
        index = int(delivery.payload_as(PatientContact).referral_id[2:])
        if not any(known is delivery.session for known in sessions):
            sessions.append(delivery.session)
        batch = next(i for i, known in enumerate(sessions) if known is delivery.session)
        seen.append((batch, key(delivery.envelope), index))

    envelopes = [
        Envelope.wrap(contact(i), source="intake", correlation_id=f"r-{i}") for i in range(BURST)
    ]
    await declare_topology(s.broker_url, s.namespace)
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        for envelope in envelopes:
            await pub.publish_envelope(envelope, "contact.notifier")
    runtime = ServiceRuntime(ServiceName.NOTIFIER, s, "services.notifier:migrations")
    runtime.consume("contacts", handler, order=key)
    async with running(runtime):
        for _ in range(300):
            if len(seen) >= BURST:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        assert await _count(runtime, inbox) == BURST
        [consumer] = runtime.consumers
        assert consumer.batches >= 1
    assert sorted(index for _, _, index in seen) == list(range(BURST))
    batches: dict[int, list[tuple[str, int]]] = {}
    for batch, k, index in seen:
        batches.setdefault(batch, []).append((k, index))
    assert any(len(b) > 3 for b in batches.values()), "no batch to order"
    for handled in batches.values():
        # In key order, and by arrival within a key: exactly the stable sort.
        assert handled == sorted(handled)


async def test_a_batch_is_prepared_once_before_its_handlers(batch_settings: Settings) -> None:
    """A consumer given a ``prepare`` step runs it once per batch, in the batch's own
    transaction and before any of its handlers, with the batch's events in the order
    its handlers take them; each handler finds what it left there. A duplicate event
    is not handed to it twice; a delivery alone (a batch of one) is not prepared."""
    s = batch_settings
    prepared: list[list[str]] = []
    handled: list[tuple[str, int | None]] = []  # (referral, the batch prepared for it)

    async def prepare(session: Any, envelopes: Sequence[Envelope]) -> None:
        assert session.info.get("test.batch") is None
        ids = [e.data["referral_id"] for e in envelopes]
        assert len(ids) == len(set(ids))
        session.info["test.batch"] = len(prepared)
        prepared.append(ids)

    async def handler(delivery: Delivery) -> None:
        referral_id = delivery.payload_as(PatientContact).referral_id
        handled.append((referral_id, delivery.session.info.get("test.batch")))

    envelopes = [
        Envelope.wrap(contact(i), source="intake", correlation_id=f"r-{i}") for i in range(BURST)
    ]
    await declare_topology(s.broker_url, s.namespace)
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        for envelope in [*envelopes, envelopes[0], envelopes[1]]:  # two published twice
            await pub.publish_envelope(envelope, "contact.notifier")
    runtime = ServiceRuntime(ServiceName.NOTIFIER, s, "services.notifier:migrations")
    runtime.consume("contacts", handler, prepare=prepare)
    async with running(runtime):
        for _ in range(300):
            if len(handled) >= BURST:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        [consumer] = runtime.consumers
        batches = consumer.batches
    assert sorted(int(r[2:]) for r, _ in handled) == list(range(BURST))
    assert batches >= 1 and len(prepared) == batches
    for number, ids in enumerate(prepared):
        # Every event prepared was handled in that batch's transaction, in that order.
        assert [r for r, batch in handled if batch == number] == ids
    alone = [r for r, batch in handled if batch is None]
    assert len(alone) + sum(len(ids) for ids in prepared) == BURST
