"""Retention (issue 34): how long each category of data is kept, and the purge that
deletes what is past it, in small batches.

Each service says what is due in its ``domain/retention.py`` (pure: the states that are
final, the cut-off from the clock it is given) and how to find and purge it in its
``store/retention.py`` (a ``Step`` per table). This module runs the steps the same way
for every service: each batch is its own short transaction, found and purged by primary
key, so that a purge never holds locks long and the pipeline goes on beside it; a purge
killed half-way has lost nothing, as the next one finds what is still due and goes on.

What each run purged (counts per category and table, never content) is written to the
service's ``purges`` table, in the same transaction as each batch: the record is exact
even for a run killed in the middle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.events import new_id, utcnow
from shared.messaging_tables import inbox, outbox
from shared.outbox import CLEARED_ONCE_PUBLISHED
from shared.settings import Settings

log = structlog.get_logger(__name__)


class Category(StrEnum):
    """What the settings keep for how long (docs/operations/settings.md, "Retention")."""

    IDENTITY = "identity"  # names, NIR, birth date, phone, e-mail, address
    CLINICAL = "clinical"  # symptoms, signs, risk factors, a decision's reasons
    MESSAGING = "messaging"  # outbox and inbox rows, once past the deduplication window
    ACCESS_LOG = "access_log"  # who read whose identity, once past its year
    DEAD_LETTERS = "dead_letters"  # on the broker: a queue policy (docs)
    AUDIT = "audit"  # the console's own traces: its audit, failed log-ins, ended sessions
    ACCOUNTS = "accounts"  # the console's accounts, once disabled long enough


@dataclass(frozen=True, slots=True)
class Retention:
    """How long past its end each category is kept; the pseudonymous record (state,
    times, centre, priority) is kept for the ARS's figures."""

    identity: timedelta
    clinical: timedelta
    messaging: timedelta
    dead_letters: timedelta
    access_log: timedelta = timedelta(days=365)
    # The console's database (aiguillage/console/retention.py).
    console_audit: timedelta = timedelta(days=365)
    disabled_accounts: timedelta = timedelta(days=365)

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        return cls(
            identity=timedelta(days=settings.retention_identity_days),
            clinical=timedelta(days=settings.retention_clinical_days),
            messaging=timedelta(days=settings.retention_messaging_days),
            dead_letters=timedelta(days=settings.retention_dead_letter_days),
            access_log=timedelta(days=settings.retention_access_log_days),
            console_audit=timedelta(days=settings.retention_console_audit_days),
            disabled_accounts=timedelta(days=settings.retention_disabled_account_days),
        )


def cutoff(now: datetime, keep: timedelta) -> datetime:
    """What ended at or before this time is due."""
    return now - keep


# The keys due now (at most ``limit``), and the purge of those keys: both in one
# batch's transaction.
FindDue = Callable[[AsyncSession, datetime, int], Awaitable[Sequence[Any]]]
Purge = Callable[[AsyncSession, Sequence[Any], datetime], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Step:
    """One table's purge: ``find`` the keys due at ``now``, ``purge`` them."""

    category: Category
    table: str
    find: FindDue
    purge: Purge
    # Called as each run starts the step: a step that pages through candidates by a
    # cursor of its own starts it over.
    start: Callable[[], None] | None = None


purge_metadata = MetaData()
purges = Table(
    "purges",
    purge_metadata,
    Column("id", String(36), primary_key=True),
    Column("trigger", String(16), nullable=False),  # command, schedule
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("clock", DateTime(timezone=True), nullable=False),  # the "now" it purged at
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("counts", JSON, nullable=False),  # {category: {table: rows}}
    Column("complete", Boolean, nullable=False),
)

_START = insert(purges)
_COUNTS = (
    update(purges).where(purges.c.id == bindparam("run_id")).values(counts=bindparam("counts"))
)
_FINISH = (
    update(purges)
    .where(purges.c.id == bindparam("run_id"))
    .values(finished_at=bindparam("finished_at"), complete=True)
)
_RUNS = select(purges).order_by(purges.c.started_at.desc()).limit(bindparam("limit"))


@dataclass
class PurgeReport:
    run_id: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    complete: bool = False

    @property
    def total(self) -> int:
        return sum(n for tables in self.counts.values() for n in tables.values())


@dataclass(frozen=True, slots=True)
class PurgeOptions:
    batch: int = 200
    pause_seconds: float = 0.05  # between batches: others' transactions go first
    trigger: str = "command"


async def run_purge(
    database: Database,
    steps: Sequence[Step],
    now: datetime,
    options: PurgeOptions = PurgeOptions(),
) -> PurgeReport:
    """Run every step to its end at ``now``, batch by batch; the report, also written
    to the ``purges`` table as it goes."""
    report = PurgeReport(new_id())
    async with database.transaction() as session:
        await session.execute(
            _START,
            {
                "id": report.run_id,
                "trigger": options.trigger,
                "started_at": utcnow(),
                "clock": now,
                "finished_at": None,
                "counts": {},
                "complete": False,
            },
        )
    for step in steps:
        if step.start is not None:
            step.start()
        more = True
        while more:
            more = await _batch(database, step, now, options.batch, report)
            if more:
                await asyncio.sleep(options.pause_seconds)
    async with database.transaction() as session:
        await session.execute(_FINISH, {"run_id": report.run_id, "finished_at": utcnow()})
    report.complete = True
    log.info("purge done", run_id=report.run_id, counts=report.counts, clock=now.isoformat())
    return report


async def _batch(
    database: Database, step: Step, now: datetime, limit: int, report: PurgeReport
) -> bool:
    """One batch in its own transaction, with the audit's counts; False once none is due."""
    async with database.transaction() as session:
        keys = await step.find(session, now, limit)
        if not keys:
            return False
        purged = await step.purge(session, keys, now)
        tables = report.counts.setdefault(step.category.value, {})
        tables[step.table] = tables.get(step.table, 0) + purged
        await session.execute(_COUNTS, {"run_id": report.run_id, "counts": report.counts})
    return True


async def recent_runs(session: AsyncSession, limit: int = 20) -> list[dict[str, Any]]:
    """The latest purges, newest first, as the audit says them."""
    rows = (await session.execute(_RUNS, {"limit": limit})).mappings().all()
    return [dict(row) for row in rows]


# -- outbox and inbox: the same in every service --------------------------------------

_OUTBOX_DUE = (
    select(outbox.c.seq)
    .where(outbox.c.published_at.is_not(None), outbox.c.published_at <= bindparam("cutoff"))
    .order_by(outbox.c.seq)
    .limit(bindparam("limit"))
)
_OUTBOX_PURGE = delete(outbox).where(outbox.c.seq.in_(bindparam("keys", expanding=True)))
# A row never published (the broker refused it and it was set aside, or it was never
# relayed) is kept no longer than what its body may hold: a contact (``patient.contact``,
# ``referral.outcome``: those a publish empties) as long as an identity, any other
# event (a referral's clinical details, pseudonymous) as long as clinical details.
_UNPUBLISHED = (
    select(outbox.c.seq)
    .where(outbox.c.published_at.is_(None), outbox.c.created_at <= bindparam("cutoff"))
    .order_by(outbox.c.seq)
    .limit(bindparam("limit"))
)
_UNPUBLISHED_CONTACTS = _UNPUBLISHED.where(outbox.c.event_type.in_(CLEARED_ONCE_PUBLISHED))
_UNPUBLISHED_OTHERS = _UNPUBLISHED.where(outbox.c.event_type.not_in(CLEARED_ONCE_PUBLISHED))
_INBOX_DUE = (
    select(inbox.c.consumer, inbox.c.event_id)
    .where(inbox.c.processed_at <= bindparam("cutoff"))
    .limit(bindparam("limit"))
)


def messaging_steps(retention: Retention) -> list[Step]:
    """Outbox rows once published and inbox rows once processed, past the window in
    which a duplicate may still come (a republish after a crash, a redelivery); outbox
    rows never published, whatever their state (set aside, pending), once past the
    retention of what they carry (``_UNPUBLISHED``)."""

    def due(statement: Any, keep: timedelta) -> FindDue:
        async def find(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
            at = cutoff(now, keep)
            return list((await session.scalars(statement, {"cutoff": at, "limit": limit})).all())

        return find

    async def outbox_purge(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        await session.execute(_OUTBOX_PURGE, {"keys": list(keys)})
        return len(keys)

    async def inbox_due(session: AsyncSession, now: datetime, limit: int) -> Sequence[Any]:
        at = cutoff(now, retention.messaging)
        rows = await session.execute(_INBOX_DUE, {"cutoff": at, "limit": limit})
        return [tuple(row) for row in rows]

    async def inbox_purge(session: AsyncSession, keys: Sequence[Any], now: datetime) -> int:
        statement = delete(inbox).where(
            tuple_(inbox.c.consumer, inbox.c.event_id).in_([tuple(k) for k in keys])
        )
        await session.execute(statement)
        return len(keys)

    return [
        Step(Category.MESSAGING, "outbox", due(_OUTBOX_DUE, retention.messaging), outbox_purge),
        Step(
            Category.IDENTITY,
            "outbox",
            due(_UNPUBLISHED_CONTACTS, max(retention.identity, retention.messaging)),
            outbox_purge,
        ),
        Step(
            Category.CLINICAL,
            "outbox",
            due(_UNPUBLISHED_OTHERS, max(retention.clinical, retention.messaging)),
            outbox_purge,
        ),
        Step(Category.MESSAGING, "inbox", inbox_due, inbox_purge),
    ]
