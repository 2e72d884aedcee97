"""The database goes away for a while: messages are held, not acked, not dead-lettered,
not lost; the service carries on by itself when the database returns."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

import aio_pika
import asyncpg
import pytest
from sqlalchemy import func, select

from services.notifier.app import build
from services.notifier.store.tables import contacts
from shared.events import PatientContact
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import dead_letter_queue

pytestmark = pytest.mark.faults


async def _queue_depth(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def _set_available(admin_url: str, database: str, available: bool) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(available).lower()}'
        )
        if not available:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
    finally:
        await connection.close()


async def test_messages_wait_for_the_database(
    settings: Settings, postgres: Any, postgres_admin_url: str
) -> None:
    url = await postgres.create("notifier")
    name = urlparse(url).path.lstrip("/")
    runtime = build(settings.model_copy(update={"notifier_database_url": url}))
    app = runtime.app()
    await app.start()
    try:
        await _set_available(postgres_admin_url, name, False)
        async with EventPublisher(settings.broker_url, settings.namespace, "t") as pub:
            for i in range(5):
                await pub.publish(
                    PatientContact(
                        referral_id=f"r-{i}", patient_ref=f"p-{i}", first_name="A", last_name="B"
                    ),
                    correlation_id=f"r-{i}",
                )
        await asyncio.sleep(8)  # longer than the whole retry budget of a failing message
        # Held in hand: not acked (still in the queue, unacknowledged), not dead-lettered.
        dlq = dead_letter_queue(settings.namespace, "notifier")
        assert await _queue_depth(settings.broker_url, dlq) == 0
        await _set_available(postgres_admin_url, name, True)
        for _ in range(100):
            async with runtime.database.transaction() as session:
                stored = await session.scalar(select(func.count()).select_from(contacts))
            if stored == 5:
                break
            await asyncio.sleep(0.2)
        assert stored == 5
        assert await _queue_depth(settings.broker_url, dlq) == 0
        assert (
            await _queue_depth(settings.broker_url, f"{settings.namespace}.notifier.contacts") == 0
        )
    finally:
        await _set_available(postgres_admin_url, name, True)
        await app.stop()
