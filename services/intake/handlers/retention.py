"""Intake's purge (issue 34): the steps ``shared.retention.run_purge`` runs, from the
domain's rule and the store's statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.domain.retention import FINAL_STATES, pseudonymous_detail
from services.intake.store import retention as store
from shared.retention import Category, Retention, Step, cutoff, messaging_steps


def purge_steps(retention: Retention) -> list[Step]:
    """Identities, then clinical details, of referrals final for long enough; the log of
    identity reads past its year; then the outbox and inbox past the deduplication
    window."""

    async def identities(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.identities_due(
            session, FINAL_STATES, cutoff(now, retention.identity), limit
        )

    async def drop_identities(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.delete_identities(session, keys)

    async def clinical(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.clinical_due(
            session, FINAL_STATES, cutoff(now, retention.clinical), limit
        )

    async def strip(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.strip_clinical(session, keys, pseudonymous_detail, now)

    async def reads(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.reads_due(session, cutoff(now, retention.access_log), limit)

    async def drop_reads(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.delete_reads(session, keys)

    return [
        Step(Category.IDENTITY, "identities", identities, drop_identities),
        Step(Category.CLINICAL, "referrals", clinical, strip),
        Step(Category.ACCESS_LOG, "identity_reads", reads, drop_reads),
        *messaging_steps(retention),
    ]
