"""The scheduler's purge (issue 34): the steps ``shared.retention.run_purge`` runs,
from the domain's rule and the store's statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.store import retention as store
from shared.retention import Category, Retention, Step, cutoff, messaging_steps


def purge_steps(retention: Retention) -> list[Step]:
    """Regulations' reasons once the referral is done with long enough (appointments
    and waiting list entries stay: the ARS counts them); then the outbox and inbox."""

    async def clinical(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.clinical_due(session, cutoff(now, retention.clinical), limit)

    async def drop(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.delete_regulations(session, keys)

    return [Step(Category.CLINICAL, "regulations", clinical, drop), *messaging_steps(retention)]
