"""Two notifier replicas on one PostgreSQL database: no notification is sent twice.

The race it pins down: a dispatcher used to put back every ``sending`` row when it
started (rows left by a crash), so a replica starting, or restarted, while the other
was sending had those sent a second time. Now a claim lasts a bounded time and only a
lapsed one is taken again."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import insert, select, update

from services.notifier.handlers.channels import Contact, PatientMessage, Webhook
from services.notifier.handlers.dispatcher import Dispatcher
from services.notifier.store.tables import contacts, notifications, referrers
from shared.db import Database
from shared.events import new_id, utcnow
from shared.migrations import upgrade
from shared.outbox import OutboxRelay


class _Relay:
    def notify(self, count: int = 1) -> None:
        pass

    async def room(self) -> None:
        pass


class SlowSms:
    """An SMS gateway that holds the first sends until told to go on."""

    name = "sms"

    def __init__(self, sent: Counter[str]) -> None:
        self.sent = sent
        self.go = asyncio.Event()
        self.holding = asyncio.Event()

    def reaches(self, contact: Contact) -> bool:
        return True

    async def send(self, contact: Contact, message: PatientMessage) -> None:
        self.holding.set()
        await self.go.wait()
        self.sent[message.notification_id] += 1


class QuickSms(SlowSms):
    async def send(self, contact: Contact, message: PatientMessage) -> None:
        self.sent[message.notification_id] += 1


@pytest.fixture
async def database(postgres: Any) -> AsyncIterator[Database]:
    db = Database(await postgres.create("notifier"))
    await upgrade(db, "services.notifier:migrations")
    yield db
    await db.dispose()


async def _pending(db: Database, count: int) -> list[str]:
    ids = []
    async with db.transaction() as session:
        for _ in range(count):
            referral_id, notification_id = new_id(), new_id()
            ids.append(notification_id)
            await session.execute(
                insert(contacts).values(
                    referral_id=referral_id,
                    patient_ref="p",
                    first_name="Jeanne",
                    last_name="Martin",
                    phone=f"06{len(ids):08d}",
                    email=None,
                    sms_consent=True,
                )
            )
            await session.execute(
                insert(referrers).values(
                    referral_id=referral_id, kind="gp", identifier="1", patient_channels=None
                )
            )
            await session.execute(
                insert(notifications).values(
                    id=notification_id,
                    cause_event_id=new_id(),
                    referral_id=referral_id,
                    recipient_kind="patient",
                    recipient=referral_id,
                    channel="sms",
                    template="patient.new_patient",
                    body="RDV",
                    target={"referral_id": referral_id},
                    status="pending",
                    attempts=0,
                    next_attempt_at=utcnow(),
                    created_at=utcnow(),
                )
            )
    return ids


def _dispatcher(db: Database, sms: SlowSms) -> Dispatcher:
    async def dead_letter(document: dict[str, Any], error: str) -> None:
        pass

    return Dispatcher(
        db, cast(OutboxRelay, _Relay()), {"sms": sms}, Webhook("s"), dead_letter, poll_seconds=0.05
    )


async def test_a_replica_starting_does_not_send_what_the_other_is_sending(
    database: Database,
) -> None:
    sent: Counter[str] = Counter()
    ids = await _pending(database, 20)
    slow = SlowSms(sent)
    first = _dispatcher(database, slow)
    claimed = asyncio.create_task(first.dispatch_once())
    await asyncio.wait_for(slow.holding.wait(), 10)  # first has claimed them all
    second = _dispatcher(database, QuickSms(sent))
    await second.start()  # a replica (re)starting while the first one sends
    try:
        await asyncio.sleep(1.0)
        assert sum(sent.values()) == 0, "the second replica sent what the first was sending"
        slow.go.set()
        await claimed
    finally:
        await second.stop()
    assert sent == Counter(dict.fromkeys(ids, 1))


async def test_replicas_side_by_side_send_each_notification_once(database: Database) -> None:
    sent: Counter[str] = Counter()
    ids = await _pending(database, 300)
    replicas = [_dispatcher(database, QuickSms(sent)) for _ in range(2)]
    for replica in replicas:
        await replica.start()
    try:
        for _ in range(200):
            if sum(sent.values()) >= len(ids):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # room for a second send to show
    finally:
        for replica in replicas:
            await replica.stop()
    assert sent == Counter(dict.fromkeys(ids, 1))


async def test_a_lapsed_claim_is_sent_again(database: Database) -> None:
    """A replica killed mid-send: once its claim lapses, another sends the row."""
    sent: Counter[str] = Counter()
    [notification_id] = await _pending(database, 1)
    async with database.transaction() as session:
        await session.execute(
            update(notifications).values(
                status="sending", next_attempt_at=utcnow() - timedelta(seconds=1)
            )
        )
    replica = _dispatcher(database, QuickSms(sent))
    assert await replica.dispatch_once() == 1
    assert sent == Counter({notification_id: 1})
    async with database.transaction() as session:
        status = await session.scalar(select(notifications.c.status))
    assert status == "sent"
