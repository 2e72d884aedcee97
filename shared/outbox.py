"""Transactional outbox: an event is written in the same transaction as the state
it describes, then relayed to RabbitMQ with publisher confirms.

If the process dies between the publish and the mark, the event is published
again on restart: delivery is at least once, and consumers are idempotent on the
event id (see ``shared.inbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared import tracing
from shared.db import Database
from shared.events import Envelope, EventPayload, utcnow
from shared.messaging_tables import OUTBOX_CHANNEL, outbox
from shared.publisher import PublishRefused
from shared.release import versioned_source

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    body: bytes
    routing_key: str
    event_id: str
    event_type: str
    correlation_id: str
    # The span that staged it (shared.tracing), for the message's headers.
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingPayload:
    """An event yet to be wrapped: what it says, and the events it follows."""

    payload: EventPayload
    correlation_id: str
    causation_id: str | None = None


Publish = Callable[[OutgoingEvent], Awaitable[None]]
# Whether this service may publish on a routing key (its broker permissions' plan).
MayPublish = Callable[[str], bool]


async def add_to_outbox(
    session: AsyncSession,
    payload: EventPayload,
    *,
    source: str,
    correlation_id: str,
    causation_id: str | None = None,
    routing_key: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """Stage an event in the caller's transaction; it leaves only if that commits."""
    envelope, row = outbox_row(
        payload,
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        routing_key=routing_key,
        event_id=event_id,
    )
    await stage_rows(session, [row])
    return envelope


def outbox_row(
    payload: EventPayload,
    *,
    source: str,
    correlation_id: str,
    causation_id: str | None = None,
    routing_key: str | None = None,
    event_id: str | None = None,
) -> tuple[Envelope, dict[str, Any]]:
    """The envelope of an event and its outbox row, to stage later with ``stage_rows``
    (group commit stages a whole batch's events in one statement)."""
    envelope = Envelope.wrap(
        payload,
        # A service names its release in what it publishes (scheduler@0.3.0).
        source=versioned_source(source),
        correlation_id=correlation_id,
        causation_id=causation_id,
        event_id=event_id,
    )
    row = {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "routing_key": routing_key or payload.routing_key(),
        "correlation_id": correlation_id,
        "body": envelope.model_dump_json(),
        "created_at": envelope.time,
        "attempts": 0,
        "traceparent": tracing.staged(correlation_id),
    }
    return envelope, row


async def stage_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert outbox rows in the caller's transaction, in order (``seq`` keeps it): one
    statement however many rows (an executemany)."""
    if rows:
        await session.execute(_STAGE, rows)


# Statements built once, parameters given per call: SQLAlchemy then skips rebuilding
# and re-keying them for its compiled cache on every event (a measured hot spot).
_STAGE = insert(outbox)
_PENDING = (
    select(
        outbox.c.seq,
        outbox.c.body,
        outbox.c.routing_key,
        outbox.c.event_id,
        outbox.c.event_type,
        outbox.c.correlation_id,
        outbox.c.traceparent,
    )
    .where(outbox.c.published_at.is_(None), outbox.c.set_aside_at.is_(None))
    .order_by(outbox.c.seq)
    .limit(bindparam("batch"))
)
_PENDING_LOCKED = _PENDING.with_for_update(skip_locked=True)
_SET_ASIDE = (
    update(outbox)
    .where(outbox.c.seq == bindparam("seq_"))
    .values(set_aside_at=bindparam("now"), last_error=bindparam("error"))
)
_COUNT_SET_ASIDE = (
    select(func.count()).select_from(outbox).where(outbox.c.set_aside_at.is_not(None))
)
# What /metrics reads (ix_outbox_pending serves both): the pending rows, the oldest's time.
_FIGURES = select(func.count(), func.min(outbox.c.created_at)).where(
    outbox.c.published_at.is_(None), outbox.c.set_aside_at.is_(None)
)
# Events whose body holds a patient's contact (names, phone, e-mail): once published,
# the stored body is emptied, so that no identity stays in clear at rest outside the
# identity stores' sealed columns (issue 34): intake's patient.contact, and the
# notifier's referral.outcome (an escalation tells Centre 15 whom to call back).
CLEARED_ONCE_PUBLISHED = ("patient.contact", "referral.outcome")
_MARK_PUBLISHED = (
    update(outbox)
    .where(outbox.c.seq.in_(bindparam("seqs", expanding=True)))
    .values(
        published_at=bindparam("now"),
        body=case((outbox.c.event_type.in_(CLEARED_ONCE_PUBLISHED), "{}"), else_=outbox.c.body),
    )
)


class OutboxRelay:
    """Publishes committed outbox rows, oldest first.

    It wakes at once when its own process commits (``notify``) and also polls, so
    rows left by a crashed process or another replica are relayed too. On
    PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets replicas relay side by side
    without publishing the same row at the same time.

    It also pushes back. Consumers and the relay share one event loop, and
    consuming is the cheaper half: in a burst, intake took in 60,000 referrals in
    14 minutes while its relay, left the loop's leftovers, fell 160,000 events
    behind, so the backlog sat in one process's outbox table (invisible to the
    broker's queue-depth alarms, out of reach of other replicas) and the services
    downstream idled. Consumers now wait in ``room()`` while this process has
    ``high_water`` events or more staged and not yet relayed, and go on once that is
    down to half: the backlog stays in the broker's queue.

    A row the broker refuses (``PublishRefused``), or whose routing key this service
    may not publish (``may_publish``, from its permissions' plan: checked before the
    broker closes the channel over it), is set aside: recorded with its error, logged,
    counted (``/ready``), and never tried again, so that it does not block the rows
    behind it. An operator looks at it.
    """

    def __init__(
        self,
        database: Database,
        publish: Publish,
        *,
        poll_seconds: float = 0.5,
        batch: int = 200,
        high_water: int = 2000,
        may_publish: MayPublish | None = None,
    ) -> None:
        self._db = database
        self._publish = publish
        self._may_publish = may_publish
        self._poll = poll_seconds
        self._batch = batch
        self._high_water = high_water
        # Events this process staged and has not relayed yet, as counted from
        # ``notify``: an estimate (a replica may relay some of them), put right
        # whenever a batch comes back short, as it then held all that was pending.
        self._backlog = 0
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False
        self.woken_by_database = 0  # notifications received (tests read it)

    @property
    def backlog(self) -> int:
        return self._backlog

    async def set_aside_count(self) -> int:
        async with self._db.transaction() as session:
            return int(await session.scalar(_COUNT_SET_ASIDE) or 0)

    async def figures(self) -> tuple[int, datetime | None, int]:
        """Rows pending, when the oldest of them was staged, rows set aside."""
        async with self._db.transaction() as session:
            pending, oldest = (await session.execute(_FIGURES)).one()
            set_aside = int(await session.scalar(_COUNT_SET_ASIDE) or 0)
        return int(pending or 0), oldest, set_aside

    def notify(self, staged: int = 1) -> None:
        """``staged`` events were just committed to the outbox: relay them now."""
        self._backlog += staged
        if self._backlog >= self._high_water:
            self._room.clear()
        self._wake.set()

    async def room(self) -> None:
        """Return once the relay is not ``high_water`` events behind (see the class)."""
        await self._room.wait()

    async def publish_unstaged(self, event: OutgoingPayload, *, source: str) -> None:
        """Publish at once, not through the outbox, an event that goes with no change of
        state (a door's answer to a message it refuses unread): nothing to keep atomic,
        and a flood of such messages costs no database write each. Lost if the process
        dies before the confirm: the message it answers, not acked yet, comes back and
        is answered then."""
        _, row = outbox_row(
            event.payload,
            source=source,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
        )
        if self._may_publish is not None and not self._may_publish(row["routing_key"]):
            raise PublishRefused(f"not this service's key: {row['routing_key']}")
        await self._publish(
            OutgoingEvent(
                row["body"].encode(),
                row["routing_key"],
                row["event_id"],
                row["event_type"],
                event.correlation_id,
                row["traceparent"],
            )
        )

    def _relayed(self, fetched: int, published: int) -> None:
        if fetched < self._batch:
            self._backlog = fetched - published  # what failed is all that is left
        else:
            self._backlog = max(0, self._backlog - published)
        if self._backlog <= self._high_water // 2:
            self._room.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        if not self._db.is_sqlite:
            self._listener = asyncio.create_task(self._listen(), name="outbox-listen")

    async def _listen(self) -> None:
        """On PostgreSQL, wake when any process commits outbox rows (a trigger notifies
        ``OUTBOX_CHANNEL`` at commit): a replica relays what another one staged at once,
        not at its next poll. The poll stays, for the notifications lost while this
        connection was down."""

        def woken(_connection: object, pid: int, *_: object) -> None:
            if pid in self._db.backend_pids:
                return  # this process's own commit: notify() has already woken the relay
            self.woken_by_database += 1
            self._wake.set()

        backoff = 1.0
        while not self._stopping:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._db.asyncpg_dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(OUTBOX_CHANNEL, woken)
                backoff = 1.0
                self._wake.set()  # what was staged while not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: listen again later
                log.warning("outbox listener failed; retrying", error=str(exc)[:200])
            finally:
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def stop(self) -> None:
        """Relay what is pending (best effort), then stop."""
        self._stopping = True
        self._wake.set()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
            self._task = None

    async def _run(self) -> None:
        backoff = self._poll
        while True:
            try:
                while await self.relay_once() == self._batch:
                    pass
                backoff = self._poll
            except Exception as exc:  # the broker or the database is away: try again later
                log.warning("outbox relay failed; retrying", error=str(exc))
                backoff = min(backoff * 2, 10.0)
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        if self._db.is_sqlite:
            # One process owns a SQLite file: no lock is needed, and the only connection
            # must not wait on the broker's confirms while handlers need it.
            async with self._db.transaction() as session:
                rows = await self._pending(session)
            if not rows:
                self._relayed(0, 0)
                return 0
            results = await self._publish_all(rows)
            async with self._db.transaction() as session:
                published = await self._mark(session, rows, results)
        else:
            async with self._db.transaction() as session:
                # Replicas share a PostgreSQL database: SKIP LOCKED gives each its own.
                rows = await self._pending(session, lock=True)
                if not rows:
                    self._relayed(0, 0)
                    return 0
                results = await self._publish_all(rows)
                published = await self._mark(session, rows, results)
        self._relayed(len(rows), published)
        return published

    async def _pending(self, session: AsyncSession, lock: bool = False) -> list[Any]:
        query = _PENDING_LOCKED if lock else _PENDING
        return list((await session.execute(query, {"batch": self._batch})).all())

    async def _publish_all(self, rows: list[Any]) -> list[BaseException | None]:
        # Confirms are awaited concurrently: one round trip for the batch, not per event.
        # Frames still leave in order on the channel. The stored body goes as it is.
        results: list[BaseException | None] = [None] * len(rows)
        sending = []
        for index, row in enumerate(rows):
            if self._may_publish is not None and not self._may_publish(row.routing_key):
                results[index] = PublishRefused(f"not this service's key: {row.routing_key}")
            else:
                sending.append(index)
        sent = await asyncio.gather(
            *(self._publish(_outgoing(rows[i])) for i in sending), return_exceptions=True
        )
        for index, result in zip(sending, sent, strict=True):
            results[index] = result if isinstance(result, BaseException) else None
        if any(isinstance(results[i], PublishRefused) for i in sending):
            # A refusal closed the channel, and failed every publish in flight on it: which
            # one the broker refused is found by trying the failed ones again, one by one.
            for index in sending:
                if results[index] is not None:
                    try:
                        await self._publish(_outgoing(rows[index]))
                        results[index] = None
                    except BaseException as exc:
                        results[index] = exc
        return results

    async def _mark(
        self, session: AsyncSession, rows: list[Any], results: list[BaseException | None]
    ) -> int:
        published = [r.seq for r, res in zip(rows, results, strict=True) if res is None]
        if published:
            await session.execute(_MARK_PUBLISHED, {"seqs": published, "now": utcnow()})
        refused = [
            (r, res)
            for r, res in zip(rows, results, strict=True)
            if isinstance(res, PublishRefused)
        ]
        for row, refusal in refused:
            await session.execute(
                _SET_ASIDE, {"seq_": row.seq, "now": utcnow(), "error": str(refusal)[:1000]}
            )
            log.error(
                "outbox row set aside: the broker refused it",
                event_id=row.event_id,
                event_type=row.event_type,
                routing_key=row.routing_key,
                error=str(refusal)[:300],
            )
        failed = [
            (r.seq, res)
            for r, res in zip(rows, results, strict=True)
            if res is not None and not isinstance(res, PublishRefused)
        ]
        for seq, error in failed:
            await session.execute(
                update(outbox)
                .where(outbox.c.seq == seq)
                .values(attempts=outbox.c.attempts + 1, last_error=str(error)[:1000])
            )
        if failed:
            log.warning("outbox publish failed", failed=len(failed), error=str(failed[0][1]))
        # Set aside counts as done: the relay goes on with the rows behind it.
        return len(published) + len(refused)


def _outgoing(row: Any) -> OutgoingEvent:
    return OutgoingEvent(
        row.body.encode(),
        row.routing_key,
        row.event_id,
        row.event_type,
        row.correlation_id,
        row.traceparent,
    )
