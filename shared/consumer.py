"""How every service consumes: parse, claim in the inbox, handle and stage the
resulting events in one transaction, commit, then ack.

Group commit: the deliveries a consumer holds are handled together, in one transaction
(``Consumer._group_commit``); a failing one is replayed alone, so that every rule below
holds per delivery.

- Not an event at all (not JSON, no envelope) or an event the handler rejects as
  permanently invalid: dead-lettered at once, with the error in the headers.
- Any other failure (database away, a bug hit by one message): handed back to the
  queue after a backoff, and dead-lettered with its error after ``max_deliveries``
  tries, so one bad message never blocks the queue.
- On a door's queue (one bound to the ingress exchange, where outsiders publish), the
  sender is the AMQP ``user_id`` the broker checked (shared.senders), never what the
  message says; a message too large, from an unknown sender, of a type its sender may
  not send, routed on another key than its type's (a CC header), or whose claims the
  handler finds inconsistent with its sender (``SenderRefused``) is answered with a
  ``request.refused`` on the sender's own reply key, recorded in ``refusals`` and
  logged with the sender's user, and never applied.
- No sender stalls a door (``shared.door_guard``): a sender held (its own quota spent)
  is refused before its message is read, and past a budget refusals are answered
  without being recorded, so that a flood costs no transaction per message.
- No message nests deeper than ``shared.nesting.MAX_DEPTH``, judged on its bytes before
  it is parsed: refused to its sender on a door, dead-lettered at once elsewhere.

Dead-letter headers carry codes, ids and field names, never a value of the message:
no identity, no clinical data, no exception text with parameters.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter
from typing import Annotated, Any, TypeVar

import structlog
from aio_pika import IncomingMessage as AmqpDelivery
from faststream._internal.context import Context
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.message import RabbitMessage as IncomingMessage
from opentelemetry.trace import Span, SpanKind
from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from shared import tracing
from shared.db import Database
from shared.door_guard import DoorGuard
from shared.events import Envelope, EventPayload, RequestRefused, UnknownEventError, utcnow
from shared.events.versions import UnreadableVersionError
from shared.inbox import claim, claim_id, claim_many
from shared.messaging_tables import refusals
from shared.metrics import CounterChild, HistogramChild, ServiceMetrics
from shared.nesting import MAX_DEPTH, too_deep
from shared.outbox import OutboxRelay, OutgoingPayload, add_to_outbox, outbox_row, stage_rows
from shared.senders import ActorKind, Sender, SenderPolicy, SenderRefused, SenderThrottled
from shared.topology import QueueSpec, dead_letter_exchange

log = structlog.get_logger(__name__)

P = TypeVar("P", bound=EventPayload)

_MESSAGE_CONTEXT = (
    "consumer",
    "message_id",
    "attempt",
    "event_id",
    "event_type",
    "correlation_id",
    "sender_user",
    "_sensitive",
)


class _InLoopContext(Context):
    """FastStream's ``Context``, resolved in the event loop.

    fast_depends runs a custom field's synchronous ``use`` in a worker thread, for every
    message: the profile of the pipeline bench showed that hop (a thread pool round trip
    per delivery) at about 5 % of each service's CPU. Reading the message from the
    context is a dictionary lookup; an async ``use`` is awaited in place.
    """

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


RabbitMessage = Annotated[IncomingMessage, _InLoopContext("message")]


class PermanentError(Exception):
    """This message will never be processed: dead-letter it now, do not retry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Delivery:
    """What a handler gets: the event, and a transaction to change state and emit in.

    ``sender`` is set on a door's queue only: who published the message, as the broker
    proved it. ``received_at`` is when this service took it: the order of what outsiders
    send is the order of receipt, not the time their envelope claims.
    """

    session: AsyncSession
    envelope: Envelope
    source: str
    emitted: list[Envelope] = field(default_factory=list)
    sender: Sender | None = None
    routing_key: str = ""
    received_at: datetime = field(default_factory=utcnow)
    # Under group commit, the outbox rows of the whole batch, staged in one statement
    # when every handler of the batch is done (None: staged at once).
    staged: list[dict[str, Any]] | None = None
    # Figures the handler measured (shared.metrics), recorded once the transaction commits.
    measures: list[tuple[str, float]] = field(default_factory=list)

    def measure(self, name: str, value: float) -> None:
        """A figure of this delivery (``shared.metrics.SUBMISSION_TO_BOOKING``...), kept
        if its transaction commits."""
        self.measures.append((name, value))

    @property
    def occurred_at(self) -> datetime:
        """When it happened, for ordering: our own services' clock for the bus's events,
        the time of receipt for what came through a door."""
        return self.envelope.time if self.sender is None else self.received_at

    @property
    def from_door(self) -> bool:
        """Whether an outsider published it (a door's queue): read strictly, an unknown
        field refused; another service's event on the bus is read tolerantly."""
        return self.sender is not None

    def payload_as(self, cls: type[P]) -> P:
        """The event as ``cls``, the version this consumer handles (older versions upcast,
        unknown fields ignored on the bus: ``shared.events.versions``)."""
        return self.envelope.payload_as(cls, tolerant=not self.from_door)

    def payload(self) -> EventPayload:
        """The event as the catalogue's class of its type and version (tolerant on the
        bus, strict at a door), for a handler that takes several types."""
        return self.envelope.payload(tolerant=not self.from_door)

    async def emit(
        self,
        payload: EventPayload,
        *,
        correlation_id: str | None = None,
        routing_key: str | None = None,
    ) -> Envelope:
        envelope, row = outbox_row(
            payload,
            source=self.source,
            correlation_id=correlation_id or self.envelope.correlation_id,
            causation_id=self.envelope.id,
            routing_key=routing_key,
        )
        if self.staged is None:
            await stage_rows(self.session, [row])
        else:
            self.staged.append(row)
        self.emitted.append(envelope)
        return envelope


Handler = Callable[[Delivery], Awaitable[None]]
# The key of the rows a delivery's handler will lock (group commit takes a batch's
# deliveries in its order).
LockOrder = Callable[[Envelope], str]
# The work a batch does once, in its transaction, before its handlers: given the
# batch's events (each once, in the order its handlers will run), it leaves what it
# found in ``session.info`` for them (the scheduler plans the batch's bookings
# together). A delivery handled alone (a replay, a redelivery) has no such step.
Prepare = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]
# A door's own checks that need no database, before a delivery joins a batch: raises
# SenderRefused (intake: a quota this process knows spent, a referral in another's name).
Gate = Callable[[Sender, Envelope], None]
# What FastStream's subscriber does with a delivery aio-pika hands it.
Consume = Callable[[AmqpDelivery], Coroutine[Any, Any, Any]]
R = TypeVar("R")


@dataclass(eq=False)
class _Held:
    """A delivery checked and parsed, waiting for its batch's transaction."""

    envelope: Envelope
    sender: Sender | None
    routing_key: str
    received_at: datetime
    message_id: str | None
    attempt: int
    span: Span | None = None  # the delivery's span (shared.tracing), None when off
    outcome: asyncio.Future[Delivery | None] = field(init=False)

    def settle(self, delivery: Delivery | None, error: BaseException | None = None) -> None:
        # The delivery's task may be gone (cancelled at shutdown): its message, not
        # acked, comes back, and the inbox knows it if the batch committed.
        if self.outcome.done():
            return
        if error is not None:
            self.outcome.set_exception(error)
        else:
            self.outcome.set_result(delivery)


def _firsts(batch: list[_Held], turns: Sequence[int], claimed: set[str]) -> list[Envelope]:
    """The claimed events of a batch, each once, in the order of its turns."""
    seen: set[str] = set()
    firsts = []
    for turn in turns:
        envelope = batch[turn].envelope
        if envelope.id in claimed and envelope.id not in seen:
            seen.add(envelope.id)
            firsts.append(envelope)
    return firsts


def _bind(held: _Held, consumer: str) -> None:
    """The log context of one delivery, inside the committer task that runs its handler
    (the task serves many deliveries: each gets its own context, and none of a
    handler's bindings, such as the names intake redacts, outlives it)."""
    structlog.contextvars.unbind_contextvars(*_MESSAGE_CONTEXT)
    structlog.contextvars.bind_contextvars(
        consumer=consumer,
        sender_user=held.sender.user if held.sender is not None else None,
        message_id=held.message_id,
        attempt=held.attempt,
        event_id=held.envelope.id,
        event_type=held.envelope.type,
        correlation_id=held.envelope.correlation_id,
    )


@dataclass
class ConsumerConfig:
    namespace: str
    service: str
    max_deliveries: int = 5
    retry_backoff_seconds: float = 0.5
    senders: SenderPolicy = field(default_factory=lambda: SenderPolicy(frozenset({"guest"})))
    max_message_bytes: int = 64 * 1024
    # Group commit: up to ``max_batch`` deliveries in one transaction, the first waiting
    # at most ``batch_window_seconds`` for the others (1: one transaction per delivery).
    max_batch: int = 32
    batch_window_seconds: float = 0.002
    # FastStream's in-memory broker (the one-process demo) carries no user_id: there is
    # no broker to prove a sender, and nobody outside to send.
    in_memory: bool = False
    # The service's figures (shared.metrics); None: not counted.
    metrics: ServiceMetrics | None = None


class Consumer:
    def __init__(
        self,
        config: ConsumerConfig,
        spec: QueueSpec,
        handler: Handler,
        database: Database,
        relay: OutboxRelay,
        broker: RabbitBroker,
        order: LockOrder | None = None,
        prepare: Prepare | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.config = config
        self.spec = spec
        self.handler = handler
        self.order = order
        self.prepare = prepare
        self.gate = gate
        self.guard = DoorGuard()
        self.database = database
        self.relay = relay
        self.broker = broker
        self.name = f"{config.service}.{spec.subscription}"
        self._dlx = RabbitExchange(
            dead_letter_exchange(config.namespace, config.service), declare=False
        )
        self._waiting: list[_Held] = []
        self._committer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed by group commit (for tests and benches)
        self.metrics = config.metrics
        # Bound once: a delivery's figures cost a few increments, no label lookup.
        self._handled: CounterChild | None = None
        self._handling: HistogramChild | None = None
        self._failed: CounterChild | None = None
        self._duplicate: CounterChild | None = None
        if self.metrics is not None:
            self._handled = self.metrics.deliveries.labels(self.name)
            self._handling = self.metrics.handling.labels(self.name)
            self._failed = self.metrics.failures.labels(self.name)
            self._duplicate = self.metrics.duplicates.labels(self.name)

    async def __call__(self, message: RabbitMessage) -> None:
        began = perf_counter()
        try:
            if not tracing.enabled():  # the common case: not even a context manager
                await self._consume(message)
                return
            with tracing.span(
                f"{self.name} process",
                service=self.config.service,
                parent=tracing.parent_of(message.raw_message.headers),
                kind=SpanKind.CONSUMER,
            ) as span:
                await self._consume(message, span)
        finally:
            # Handlers may bind more (intake binds the names it must redact): none of
            # it may outlive the message, whatever task runs the next one.
            structlog.contextvars.unbind_contextvars(*_MESSAGE_CONTEXT)
            if self._handling is not None:
                self._handling.observe(perf_counter() - began)

    def _counted(self, envelope: Envelope, delivery: Delivery | None) -> None:
        """A delivery committed: its figures (shared.metrics)."""
        if self.metrics is None:
            return
        if delivery is None:
            if self._duplicate is not None:
                self._duplicate.inc()
            return
        if self._handled is not None:
            self._handled.inc()
        if delivery.emitted:
            self.metrics.observe_emitted(envelope, delivery.emitted)
        for name, value in delivery.measures:
            self.metrics.measure(name, value)

    async def _consume(self, message: RabbitMessage, span: Span | None = None) -> None:
        received_at = utcnow()
        attempt = _delivery_count(message) + 1
        structlog.contextvars.bind_contextvars(
            consumer=self.name, message_id=message.message_id, attempt=attempt
        )
        sender: Sender | None = None
        if self.spec.is_door:
            try:
                sender = self._sender(message)
                # Before anything else: a held sender's message costs no parsing, no
                # database, no batch, and no wait behind the relay.
                self._gate(sender, None)
            except SenderRefused as refused:
                await self._refuse(message, None, sender, refused, received_at)
                return
        # While the relay is far behind, the message waits unprocessed (and unacked):
        # the backlog stays in the queue rather than in the outbox (OutboxRelay).
        await self.relay.room()
        out_of_bounds = self._out_of_bounds(message.body)
        if out_of_bounds is not None:
            # Not even parsed; on a door, answered on the sender's own key all the same.
            if sender is not None:
                await self._refuse(message, None, sender, out_of_bounds, received_at)
            else:
                await self._dead_letter(message, out_of_bounds.code, out_of_bounds.cause, attempt)
            return
        try:
            # An envelope field this release does not know is ignored on the bus (a newer
            # service's), refused at a door (an outsider's mistake).
            envelope = Envelope.model_validate_json(
                message.body, extra=None if self.spec.is_door else "ignore"
            )
        except ValidationError as exc:
            await self._dead_letter(message, "invalid_envelope", safe_error(exc), attempt)
            return
        structlog.contextvars.bind_contextvars(
            event_id=envelope.id, event_type=envelope.type, correlation_id=envelope.correlation_id
        )
        tracing.tag_referral(span, envelope.correlation_id)
        routing_key = message.raw_message.routing_key or ""
        try:
            if sender is not None:
                _check_door(sender, envelope, routing_key, self.spec)
                self._gate(sender, envelope)
            delivery = await self._group_commit(
                _Held(envelope, sender, routing_key, received_at, message.message_id, attempt, span)
            )
        except SenderRefused as refused:
            await self._refuse(message, envelope, sender, refused, received_at)
            return
        except PermanentError as exc:
            await self._dead_letter(message, exc.code, str(exc), attempt)
            return
        except UnreadableVersionError as exc:  # its message names fields, never values
            await self._dead_letter(message, exc.code, str(exc), attempt)
            return
        except (ValidationError, UnknownEventError) as exc:
            await self._dead_letter(message, "invalid_payload", safe_error(exc), attempt)
            return
        except Exception as exc:
            await self._retry_or_dead_letter(message, exc, attempt)
            return
        if delivery is not None and delivery.emitted:
            self.relay.notify(len(delivery.emitted))
        self._counted(envelope, delivery)
        await message.ack()

    def _out_of_bounds(self, body: bytes) -> SenderRefused | None:
        """What no message may be, judged on its bytes before it is parsed: over the
        door's size (a door's bound), nested too deep (every queue's: a parser recurses
        once per level)."""
        if self.spec.is_door and len(body) > self.config.max_message_bytes:
            return SenderRefused(
                "message_too_large", f"the message exceeds {self.config.max_message_bytes} bytes"
            )
        if too_deep(body):
            return SenderRefused(
                "too_deep", f"the message nests arrays or objects over {MAX_DEPTH} levels deep"
            )
        return None

    def _gate(self, sender: Sender | None, envelope: Envelope | None) -> None:
        """A door's checks that need no database: the sender held (shared.door_guard),
        then, once the message is read, the service's own gate. Run again as a batch is
        taken: an earlier delivery may have found the sender's quota spent meanwhile."""
        if sender is None:
            return
        held = self.guard.held(sender.name)
        if held is not None:
            raise held
        if envelope is not None and self.gate is not None:
            self.gate(sender, envelope)

    def _sender(self, message: RabbitMessage) -> Sender:
        """Who published it, as the broker proved it (the door's first check)."""
        raw = message.raw_message
        if self.config.in_memory:
            return Sender("in-memory", ActorKind.OPERATOR)
        sender = self.config.senders.resolve(raw.user_id, raw.headers)
        structlog.contextvars.bind_contextvars(sender_user=sender.user)
        return sender

    async def _refuse(
        self,
        message: RabbitMessage,
        envelope: Envelope | None,
        sender: Sender | None,
        refused: SenderRefused,
        received_at: datetime,
    ) -> None:
        """Answer a refusal, and record and log it, while its sender's budgets allow
        (shared.door_guard); nothing of it is applied."""
        raw = message.raw_message
        if self.metrics is not None:
            self.metrics.refused.labels(self.name, refused.code).inc()
        key = sender.name if sender is not None else (raw.user_id or "")
        if self._records(sender, refused, key):
            await self._record_refusal(message, envelope, sender, refused, received_at)
            return
        await self._answer_only(raw.message_id or "", envelope, sender, refused)
        await message.ack()

    def first_look(self, consume: Consume) -> Consume:
        """A door's first look at a message, before FastStream builds anything for it
        (its dependency injection cost more than the rest of a refusal): while a sender
        is held (shared.door_guard), the sender from the AMQP user_id, and a held
        sender's message refused there, unread."""

        async def look(raw: AmqpDelivery) -> Any:
            if self.guard.holds_anyone():
                try:
                    sender = self.config.senders.resolve(raw.user_id, raw.headers)
                    refusal = self.guard.held(sender.name)
                    if refusal is not None:
                        await self._answer_only(raw.message_id or "", None, sender, refusal)
                        await raw.ack()
                        return None
                except SenderRefused:
                    pass  # refused, recorded and answered by the consumer, as ever
                except Exception as exc:  # the channel went: the message comes back
                    log.warning("held sender's message not refused", error=safe_error(exc))
                    return None
            return await consume(raw)

        return look

    async def _answer_only(
        self,
        message_id: str,
        envelope: Envelope | None,
        sender: Sender | None,
        refused: SenderRefused,
    ) -> None:
        """A refusal not recorded (a held sender's, or past its sender's budget): no
        state goes with it, so its answer is published at once, not through the outbox,
        while the sender's budget of answers allows."""
        answer = self._refusal_answer(message_id, envelope, sender, refused)
        if answer is None or sender is None or not self.guard.answers(sender.name):
            return
        try:
            await self.relay.publish_unstaged(answer, source=self.config.service)
        except Exception as exc:  # the sender is refused all the same
            log.warning("refusal not answered", error=safe_error(exc))

    def _records(self, sender: Sender | None, refused: SenderRefused, key: str) -> bool:
        """Whether this refusal costs a transaction: not a held sender's (the refusal
        that held it was recorded), nor one past its sender's budget (a flood)."""
        if isinstance(refused, SenderThrottled) and sender is not None:
            if self.guard.holding(sender.name):
                return False
            if refused.whole_sender:
                self.guard.hold(sender.name, refused)
        return self.guard.records(key)

    def _refusal_answer(
        self,
        message_id: str,
        envelope: Envelope | None,
        sender: Sender | None,
        refused: SenderRefused,
    ) -> OutgoingPayload | None:
        """``request.refused`` on the sender's own key (none for an unknown sender or an
        operator), naming the message it answers."""
        if sender is None or sender.reply_key is None:
            return None
        message_id = envelope.id if envelope is not None else message_id
        payload = RequestRefused(
            reply_to=sender.reply_key,
            source_message_id=message_id or None,
            refused_type=envelope.type if envelope is not None else None,
            error_code=refused.code,
            cause=refused.cause,
        )
        correlation_id = (envelope.correlation_id if envelope else message_id) or "-"
        return OutgoingPayload(payload, correlation_id, envelope.id if envelope else None)

    async def _record_refusal(
        self,
        message: RabbitMessage,
        envelope: Envelope | None,
        sender: Sender | None,
        refused: SenderRefused,
        received_at: datetime,
    ) -> None:
        """Answer, record and log a refusal, once per message."""
        raw = message.raw_message
        message_id = envelope.id if envelope is not None else (raw.message_id or "")
        user = sender.user if sender is not None else (raw.user_id or "")
        log.warning(
            "message refused",
            error_code=refused.code,
            cause=refused.cause,
            field=refused.field,
            sender_user=user or None,
            sender=sender.name if sender is not None else None,
            routing_key=raw.routing_key,
        )
        answer = self._refusal_answer(message_id, envelope, sender, refused)
        async with self.database.transaction() as session:
            # Once per message: a redelivered refusal is neither answered nor recorded again.
            event_type = envelope.type if envelope is not None else "-"
            if message_id and not await claim_id(session, self.name, message_id, event_type):
                await message.ack()
                return
            await session.execute(
                insert(refusals).values(
                    consumer=self.name,
                    message_id=message_id[:64],
                    sender_user=user[:128],
                    sender=(sender.name if sender is not None else "")[:128],
                    error_code=refused.code,
                    field=refused.field,
                    event_type=(envelope.type if envelope is not None else None),
                    routing_key=(raw.routing_key or "")[:255],
                    received_at=received_at,
                )
            )
            if answer is not None:
                await add_to_outbox(
                    session,
                    answer.payload,
                    source=self.config.service,
                    correlation_id=answer.correlation_id,
                    causation_id=answer.causation_id,
                )
        if answer is not None:
            self.relay.notify(1)
        await message.ack()

    async def _process_while_database_away(
        self,
        envelope: Envelope,
        sender: Sender | None = None,
        routing_key: str = "",
        received_at: datetime | None = None,
    ) -> Delivery | None:
        """Process alone; while the database does not answer, hold it and try again."""
        return await self._while_database_away(
            lambda: self._process(envelope, sender, routing_key, received_at)
        )

    async def _process(
        self,
        envelope: Envelope,
        sender: Sender | None = None,
        routing_key: str = "",
        received_at: datetime | None = None,
    ) -> Delivery | None:
        async with self.database.transaction() as session:
            if not await claim(session, self.name, envelope):
                log.info("duplicate event ignored")
                return None
            delivery = Delivery(
                session=session,
                envelope=envelope,
                source=self.config.service,
                sender=sender,
                routing_key=routing_key,
                received_at=received_at or utcnow(),
            )
            await self.handler(delivery)
            return delivery

    async def _group_commit(self, held: _Held) -> Delivery | None:
        """Handle this delivery in a transaction shared with the others this consumer
        holds, and return once that transaction has committed (the caller then acks).

        One committer task per consumer takes what has gathered: it waits a few
        milliseconds at most for the deliveries the broker has already sent, and while
        it commits one batch the next one gathers. The failure of one delivery fails
        none of the others: the batch is rolled back and replayed one by one, and each
        delivery gets its own outcome (ack, retry, dead letter); its later tries go alone.
        """
        if held.attempt > 1:
            # A redelivery failed before: alone, so that a poisoned message does not
            # roll back (and slow down) a batch on each of its tries.
            return await self._process_while_database_away(
                held.envelope, held.sender, held.routing_key, held.received_at
            )
        held.outcome = asyncio.get_running_loop().create_future()
        self._waiting.append(held)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_batches(), name=self.name)
        return await held.outcome

    async def _commit_batches(self) -> None:
        while self._waiting:
            if len(self._waiting) < self.config.max_batch and self.config.batch_window_seconds:
                await asyncio.sleep(self.config.batch_window_seconds)
            batch = self._waiting[: self.config.max_batch]
            del self._waiting[: len(batch)]
            try:
                await self._commit_batch(self._admitted(batch))
            except BaseException as exc:  # a bug here must not leave a delivery waiting
                for held in batch:
                    held.settle(None, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def _commit_batch(self, batch: list[_Held]) -> None:
        if len(batch) > 1:
            try:
                # Once: whatever failed (the database away included, which each delivery
                # then waits out on its own), the batch is replayed one by one. A batch
                # retried whole could fail whole forever.
                results = await self._process_batch(batch)
            except Exception as exc:
                log.warning(
                    "batch failed; replaying it one by one",
                    batch=len(batch),
                    error=safe_error(exc),
                )
            else:
                self.batches += 1
                for held, delivery in zip(batch, results, strict=True):
                    held.settle(delivery)
                return
        for held in batch:
            if not self._admitted([held]):
                continue  # refused since: its sender held by a delivery replayed before it
            _bind(held, self.name)
            try:
                with tracing.within(held.span):
                    delivery = await self._process_while_database_away(
                        held.envelope, held.sender, held.routing_key, held.received_at
                    )
            except Exception as exc:
                held.settle(None, exc)
            else:
                held.settle(delivery)
            finally:
                structlog.contextvars.unbind_contextvars(*_MESSAGE_CONTEXT)

    def _admitted(self, batch: list[_Held]) -> list[_Held]:
        """The deliveries of a batch its door still takes. One refused since it was gated
        (its sender held, its quota found spent by an earlier delivery) is settled with
        its refusal here, outside any transaction: it neither fails the batch (whose
        replay, one by one, would cost every delivery in it a transaction) nor costs one."""
        if not self.spec.is_door:
            return batch
        kept = []
        for held in batch:
            try:
                self._gate(held.sender, held.envelope)
            except SenderRefused as refused:
                held.settle(None, refused)
            else:
                kept.append(held)
        return kept

    async def _process_batch(self, batch: list[_Held]) -> list[Delivery | None]:
        """One transaction: one inbox statement for the batch, each handler in turn,
        one outbox statement for all their events, one commit."""
        staged: list[dict[str, Any]] = []
        results: list[Delivery | None] = [None] * len(batch)
        turns: Sequence[int] = range(len(batch))
        if self.order is not None:
            # The rows its handlers lock, taken in one order by every batch (a stable
            # sort: one referral's messages keep theirs): two replicas' batches then
            # wait for each other instead of deadlocking.
            key = self.order
            turns = sorted(turns, key=lambda i: key(batch[i].envelope))
        async with self.database.transaction() as session:
            claimed = await claim_many(
                session, self.name, [(h.envelope.id, h.envelope.type) for h in batch]
            )
            if self.prepare is not None:
                await self.prepare(session, _firsts(batch, turns, claimed))
            for turn in turns:
                held = batch[turn]
                if held.envelope.id not in claimed:
                    continue
                claimed.discard(held.envelope.id)  # a second copy in the batch is a duplicate
                _bind(held, self.name)
                try:
                    delivery = Delivery(
                        session=session,
                        envelope=held.envelope,
                        source=self.config.service,
                        sender=held.sender,
                        routing_key=held.routing_key,
                        received_at=held.received_at,
                        staged=staged,
                    )
                    if held.span is None:
                        await self.handler(delivery)
                    else:
                        with tracing.within(held.span):
                            await self.handler(delivery)
                finally:
                    structlog.contextvars.unbind_contextvars(*_MESSAGE_CONTEXT)
                results[turn] = delivery
            await stage_rows(session, staged)
        for held, result in zip(batch, results, strict=True):
            if result is None:
                _bind(held, self.name)
                log.info("duplicate event ignored")
                structlog.contextvars.unbind_contextvars(*_MESSAGE_CONTEXT)
        return results

    async def _while_database_away(self, work: Callable[[], Awaitable[R]]) -> R:
        """Run ``work``; while the database does not answer, wait and run it again.

        An outage is no fault of the message: it is neither acked nor handed back (which
        would spend its tries and, past the queue's delivery limit, dead-letter it), and
        the consumer's prefetch bounds how many messages wait like this.
        """
        delay = max(self.config.retry_backoff_seconds, 0.1)
        while True:
            try:
                return await work()
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                log.warning(
                    "database unavailable; holding the message",
                    error=str(exc)[:200],
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_OUTAGE_BACKOFF)

    async def _retry_or_dead_letter(
        self, message: RabbitMessage, exc: Exception, attempt: int
    ) -> None:
        if attempt >= self.config.max_deliveries:
            await self._dead_letter(
                message, "retries_exhausted", safe_error(exc), attempt, detail=frames(exc)
            )
            return
        delay = self.config.retry_backoff_seconds * 2 ** (attempt - 1)
        log.warning("handling failed; will retry", error=safe_error(exc), retry_in=delay)
        if self._failed is not None:
            self._failed.inc()
        # The wait holds one prefetch slot: a failing dependency slows the consumer
        # down instead of spinning on redeliveries.
        await asyncio.sleep(delay)
        await message.nack(requeue=True)

    async def _dead_letter(
        self,
        message: RabbitMessage,
        code: str,
        error: str,
        attempt: int,
        detail: str | None = None,
    ) -> None:
        raw = message.raw_message
        # Of the message's own headers only the broker's delivery record goes along: a
        # header may hold anything its sender put there.
        headers = {k: v for k, v in (raw.headers or {}).items() if k in _KEPT_HEADERS}
        headers.update(
            {
                "x-error-code": code,
                "x-error": error[:2000],
                "x-error-detail": (detail or "")[:4000],
                "x-failed-consumer": self.name,
                "x-failed-at": utcnow().isoformat(),
                "x-attempts": attempt,
                "x-original-exchange": raw.exchange or "",
                "x-original-routing-key": raw.routing_key or "",
                "x-sender-user": raw.user_id or "",
            }
        )
        # Published with a confirm before the ack: a crash in between duplicates the
        # dead letter rather than losing the message.
        await self.broker.publish(
            raw.body,
            exchange=self._dlx,
            routing_key=self.config.service,
            headers=headers,
            persist=True,
            mandatory=False,
            message_id=raw.message_id,
            correlation_id=raw.correlation_id,
            content_type=raw.content_type,
            message_type=raw.type,
        )
        log.error("message dead-lettered", error_code=code, error=error)
        if self.metrics is not None:
            self.metrics.dead_lettered.labels(self.name, code).inc()
        await message.ack()


MAX_OUTAGE_BACKOFF = 5.0
_KEPT_HEADERS = frozenset({"x-delivery-count", "x-death", "x-first-death-queue"})


def _check_door(sender: Sender, envelope: Envelope, routing_key: str, spec: QueueSpec) -> None:
    """What every door checks before its handler: the sender may send this type, on its
    type's key, and that key is one this door's queue is bound to. The last two catch
    CC/BCC headers, which RabbitMQ before 4.0.3 routes without checking them against
    topic permissions: the message then arrives with the key its sender was allowed (and
    a body of its choosing), at a queue bound to another key."""
    if not sender.may_send(envelope.type):
        raise SenderRefused(
            "sender_not_allowed", f"{sender.kind.value} may not send {envelope.type}", "type"
        )
    if routing_key != envelope.type and not routing_key.startswith(f"{envelope.type}."):
        raise SenderRefused(
            "routing_inconsistent", "the routing key is not the event's type", "routing_key"
        )
    if not any(topic_matches(binding, routing_key) for binding in spec.bindings):
        raise SenderRefused(
            "routing_inconsistent", "the routing key is not one of this door's", "routing_key"
        )


def topic_matches(binding: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""

    def match(pattern: list[str], words: list[str]) -> bool:
        if not pattern:
            return not words
        head, rest = pattern[0], pattern[1:]
        if head == "#":
            return any(match(rest, words[i:]) for i in range(len(words) + 1))
        if not words:
            return False
        return (head in ("*", words[0])) and match(rest, words[1:])

    return match(binding.split("."), routing_key.split("."))


def safe_error(exc: BaseException) -> str:
    """An error as a dead-letter header or a log may carry it: codes, field names and
    our own words, never a value of the message (no identity, no clinical data).

    A validation error gives each field and error type (not pydantic's message, which
    quotes the input); a database error its class and SQLSTATE (not its text, which
    prints the statement's parameters); anything else its class and its text cut before
    SQLAlchemy's ``[SQL:`` / ``[parameters:``."""
    if isinstance(exc, ValidationError):
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '-'}: {e['type']}" for e in exc.errors()
        )
        return f"ValidationError: {fields}"[:2000]
    if isinstance(exc, StatementError):
        orig = getattr(exc, "orig", None)
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        kind = type(orig).__name__ if orig is not None else "-"
        return f"{type(exc).__name__} ({kind}, sqlstate {sqlstate or '-'})"
    text = str(exc).split("[SQL:")[0].split("[parameters:")[0].strip()
    return f"{type(exc).__name__}: {text}"[:500]


def frames(exc: BaseException) -> str:
    """Where it failed: file, line and function of each frame, without the exception's
    text or any local value."""
    summary = traceback.extract_tb(exc.__traceback__)
    return " | ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in summary)[
        -2000:
    ]


# SQLSTATE classes of a database that is away rather than data that is wrong:
# connection exceptions, insufficient resources, operator intervention (shutdown,
# "cannot connect now"), and 55000 as raised by a database refusing connections.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "55000")


def database_unavailable(exc: BaseException) -> bool:
    """The database is away (refused, dropped, restarting, locked), not the data wrong."""
    if isinstance(exc, OperationalError | InterfaceError | SATimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    # A missing or unreadable file is no outage: it will not come back by waiting.
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    return isinstance(exc, OSError | TimeoutError)


def _delivery_count(message: RabbitMessage) -> int:
    headers = message.raw_message.headers or {}
    count = headers.get("x-delivery-count", 0)
    return int(count) if isinstance(count, int | str) and str(count).isdigit() else 0


async def _raw_body(message: Any) -> bytes:
    # The consumer parses the envelope itself, so that a body that is not even JSON
    # reaches it (and the dead-letter queue) instead of failing inside FastStream.
    body: bytes = message.body
    return body


def register(
    broker: RabbitBroker,
    consumer: Consumer,
    in_memory_exchange: RabbitExchange | None = None,
) -> None:
    """Consume the queue the topology declared (passively: its arguments live there)."""
    name = consumer.spec.name(consumer.config.namespace)
    description = f"{consumer.spec.description} Bindings: {', '.join(consumer.spec.bindings)}."
    if in_memory_exchange is None:
        subscriber = broker.subscriber(
            RabbitQueue(name, declare=False),
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_body,
            title=f"{consumer.name}:consume",
            description=description,
        )
        subscriber(consumer.__call__)
        if consumer.spec.is_door:
            # aio-pika calls the subscriber's ``consume`` (looked up when it starts).
            subscriber.consume = consumer.first_look(subscriber.consume)  # type: ignore[method-assign,assignment]
        return
    # The in-memory broker knows nothing of bindings declared elsewhere: one subscriber
    # per binding lets it route by routing key.
    for index, key in enumerate(consumer.spec.bindings):
        broker.subscriber(
            RabbitQueue(f"{name}.{index}", routing_key=key, declare=False),
            in_memory_exchange,
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_body,
            title=f"{consumer.name}:{key}",
        )(consumer.__call__)
