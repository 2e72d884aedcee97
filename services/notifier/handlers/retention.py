"""The notifier's purge (issue 34): the steps ``shared.retention.run_purge`` runs,
from the domain's rule and the store's statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.store import retention as store
from shared.retention import Category, Retention, Step, cutoff, messaging_steps


def purge_steps(retention: Retention) -> list[Step]:
    """Contacts and the notifications that name them, once nothing was done for the
    referral for long enough; then the outbox and inbox."""

    async def identities(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.contacts_due(session, cutoff(now, retention.identity), limit)

    async def drop(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.delete_contacts(session, keys)

    return [Step(Category.IDENTITY, "contacts", identities, drop), *messaging_steps(retention)]
