"""Idempotent inbox: an event id is processed once per consumer.

The claim is made in the handler's own transaction, so the effect and the record
that the event was handled commit (or roll back) together.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import Envelope, utcnow
from shared.messaging_tables import inbox


async def already_processed(session: AsyncSession, consumer: str, event_id: str) -> bool:
    row = await session.execute(
        select(inbox.c.event_id).where(inbox.c.consumer == consumer, inbox.c.event_id == event_id)
    )
    return row.first() is not None


async def claim(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Record the event as processed by ``consumer``; False if it already was.

    Two replicas racing on the same id both pass the check, but only one commits:
    the other's insert violates the primary key, its transaction rolls back and the
    redelivered message then finds the row.
    """
    if await already_processed(session, consumer, envelope.id):
        return False
    await session.execute(
        insert(inbox).values(
            consumer=consumer,
            event_id=envelope.id,
            event_type=envelope.type,
            processed_at=utcnow(),
        )
    )
    return True
