"""The notifier's purge (issue 34): the steps ``shared.retention.run_purge`` runs,
from the domain's rule and the store's statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import reads as read_log
from services.notifier.store import retention as store
from shared.retention import Category, Retention, Step, cutoff, messaging_steps


def purge_steps(retention: Retention) -> list[Step]:
    """Contacts and the notifications that name them, once nothing was done for the
    referral for long enough; the log of identity reads past its year; then the outbox
    and inbox."""

    async def identities(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.contacts_due(session, cutoff(now, retention.identity), limit)

    async def drop(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.delete_contacts(session, keys)

    async def reads(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await read_log.due(session, cutoff(now, retention.access_log), limit)

    async def drop_reads(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await read_log.delete_reads(session, keys)

    return [
        Step(Category.IDENTITY, "contacts", identities, drop),
        # The log of the names read from the notifier (a centre's day list), past its year.
        Step(Category.ACCESS_LOG, "identity_reads", reads, drop_reads),
        *messaging_steps(retention),
    ]
