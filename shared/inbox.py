"""Idempotent inbox: an event id is processed once per consumer.

The claim is made in the handler's own transaction, so the effect and the record
that the event was handled commit (or roll back) together.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import Envelope, utcnow
from shared.messaging_tables import inbox


async def claim(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Record the event as processed by ``consumer``; False if it already was."""
    return await claim_id(session, consumer, envelope.id, envelope.type)


async def claim_id(session: AsyncSession, consumer: str, event_id: str, event_type: str) -> bool:
    """Record the message ``event_id`` as processed by ``consumer``; False if it already was.

    One statement, one round trip per message. On PostgreSQL a replica racing on the
    same id waits on the other's uncommitted row: it gets False if that one commits,
    and the claim if it rolls back.
    """
    assert session.bind is not None
    statement = _CLAIM[session.bind.dialect.name == "postgresql"]
    row = {
        "consumer": consumer,
        "event_id": event_id[:36],
        "event_type": event_type[:100],
        "processed_at": utcnow(),
    }
    return (await session.execute(statement, row)).first() is not None


# Built once per dialect (both spell ON CONFLICT the same way): parameters per call.
_CLAIM = {
    postgres: dialect.insert(inbox)
    .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
    .returning(inbox.c.event_id)
    for postgres, dialect in ((True, postgresql), (False, sqlite))
}


async def claim_many(
    session: AsyncSession, consumer: str, events: list[tuple[str, str]]
) -> set[str]:
    """Claim a batch of ``(event_id, event_type)`` in one statement; the ids claimed now.

    An id already processed (or twice in the batch: a duplicate publish landing in the
    same batch) is claimed at most once; the caller treats the first occurrence as the
    claimed one and every later one as a duplicate.
    """
    assert session.bind is not None
    statement = _CLAIM[session.bind.dialect.name == "postgresql"]
    now = utcnow()
    rows = [
        {
            "consumer": consumer,
            "event_id": event_id[:36],
            "event_type": event_type[:100],
            "processed_at": now,
        }
        for event_id, event_type in events
    ]
    # One statement for the whole batch (SQLAlchemy's insertmanyvalues: one multi-row
    # INSERT ... RETURNING), not one round trip per message.
    return set((await session.execute(statement, rows)).scalars())
