"""Regulation's purge (issue 34): the steps ``shared.retention.run_purge`` runs, from
the domain's rule and the store's statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.regulation.domain.retention import OPEN_DECISIONS
from services.regulation.store import retention as store
from shared.retention import Category, Retention, Step, cutoff, messaging_steps


def purge_steps(retention: Retention) -> list[Step]:
    """Cases' clinical details once decided long enough ago; then the outbox and inbox."""

    async def clinical(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.clinical_due(
            session, OPEN_DECISIONS, cutoff(now, retention.clinical), limit
        )

    async def strip(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.strip_clinical(session, keys, now)

    return [Step(Category.CLINICAL, "cases", clinical, strip), *messaging_steps(retention)]
