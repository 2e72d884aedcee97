"""Intake's purge (issue 34): the steps ``shared.retention.run_purge`` runs, from the
domain's rule and the store's statements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.domain import retention as rule
from services.intake.domain.status import State
from services.intake.handlers.history import replayed
from services.intake.store import AnyRow
from services.intake.store import retention as store
from shared.db import as_utc
from shared.retention import Category, FindDue, Retention, Step, cutoff, messaging_steps

Candidates = Callable[
    [AsyncSession, Sequence[str], datetime, str, int], Awaitable[Sequence[AnyRow]]
]


async def _state(session: AsyncSession, row: AnyRow) -> State | None:
    """The referral's state: its status says it, or its history does (a withdrawal
    and an appointment's cancellation both read "cancelled")."""
    if not rule.needs_history(row.status):
        return State(row.status)
    current = await replayed(session, row.id)
    return None if current is None else current.state


def _final_ones(candidates: Candidates, keep: timedelta) -> tuple[FindDue, Callable[[], None]]:
    """A step's finder: the referrals the domain says are final for ``keep``, paging
    through the candidates by id (a cursor started over at each run)."""
    cursor = {"after": ""}

    def start() -> None:
        cursor["after"] = ""

    async def find(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        at = cutoff(now, keep)
        while rows := await candidates(
            session, rule.CANDIDATE_STATUSES, at, cursor["after"], limit
        ):
            cursor["after"] = rows[-1].id
            due = [
                row.id
                for row in rows
                if (state := await _state(session, row)) is not None
                and rule.is_due(state, as_utc(row.updated_at), now, keep)
            ]
            if due:
                return due
        return []

    return find, start


def purge_steps(retention: Retention) -> list[Step]:
    """Identities, then clinical details, of referrals final for long enough; the log of
    identity reads past its year; then the outbox and inbox past the deduplication
    window."""
    identities, identities_start = _final_ones(store.identity_candidates, retention.identity)
    clinical, clinical_start = _final_ones(store.clinical_candidates, retention.clinical)

    async def drop_identities(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.delete_identities(session, keys)

    async def strip(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.strip_clinical(session, keys, rule.pseudonymous_detail, now)

    async def reads(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        return await store.reads_due(session, cutoff(now, retention.access_log), limit)

    async def drop_reads(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        return await store.delete_reads(session, keys)

    return [
        Step(Category.IDENTITY, "identities", identities, drop_identities, identities_start),
        Step(Category.CLINICAL, "referrals", clinical, strip, clinical_start),
        Step(Category.ACCESS_LOG, "identity_reads", reads, drop_reads),
        *messaging_steps(retention),
    ]
