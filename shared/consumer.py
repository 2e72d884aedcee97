"""How every service consumes: parse, claim in the inbox, handle and stage the
resulting events in one transaction, commit, then ack.

- Not an event at all (not JSON, no envelope) or an event the handler rejects as
  permanently invalid: dead-lettered at once, with the error in the headers.
- Any other failure (database away, a bug hit by one message): handed back to the
  queue after a backoff, and dead-lettered with its error after ``max_deliveries``
  tries, so one bad message never blocks the queue.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import structlog
from faststream._internal.context import Context
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.message import RabbitMessage as IncomingMessage
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.events import Envelope, EventPayload, UnknownEventError, utcnow
from shared.inbox import claim
from shared.outbox import OutboxRelay, add_to_outbox
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
    """What a handler gets: the event, and a transaction to change state and emit in."""

    session: AsyncSession
    envelope: Envelope
    source: str
    emitted: list[Envelope] = field(default_factory=list)

    def payload_as(self, cls: type[P]) -> P:
        return self.envelope.payload_as(cls)

    async def emit(
        self,
        payload: EventPayload,
        *,
        correlation_id: str | None = None,
        routing_key: str | None = None,
    ) -> Envelope:
        envelope = await add_to_outbox(
            self.session,
            payload,
            source=self.source,
            correlation_id=correlation_id or self.envelope.correlation_id,
            causation_id=self.envelope.id,
            routing_key=routing_key,
        )
        self.emitted.append(envelope)
        return envelope


Handler = Callable[[Delivery], Awaitable[None]]


@dataclass
class ConsumerConfig:
    namespace: str
    service: str
    max_deliveries: int = 5
    retry_backoff_seconds: float = 0.5


class Consumer:
    def __init__(
        self,
        config: ConsumerConfig,
        spec: QueueSpec,
        handler: Handler,
        database: Database,
        relay: OutboxRelay,
        broker: RabbitBroker,
    ) -> None:
        self.config = config
        self.spec = spec
        self.handler = handler
        self.database = database
        self.relay = relay
        self.broker = broker
        self.name = f"{config.service}.{spec.subscription}"
        self._dlx = RabbitExchange(dead_letter_exchange(config.namespace), declare=False)

    async def __call__(self, message: RabbitMessage) -> None:
        try:
            await self._consume(message)
        finally:
            # Handlers may bind more (intake binds the names it must redact): none of
            # it may outlive the message, whatever task runs the next one.
            structlog.contextvars.unbind_contextvars(*_MESSAGE_CONTEXT)

    async def _consume(self, message: RabbitMessage) -> None:
        # While the relay is far behind, the message waits unprocessed (and unacked):
        # the backlog stays in the queue rather than in the outbox (OutboxRelay).
        await self.relay.room()
        attempt = _delivery_count(message) + 1
        structlog.contextvars.bind_contextvars(
            consumer=self.name, message_id=message.message_id, attempt=attempt
        )
        try:
            envelope = Envelope.model_validate_json(message.body)
        except ValidationError as exc:
            await self._dead_letter(message, "invalid_envelope", _short(exc), attempt)
            return
        structlog.contextvars.bind_contextvars(
            event_id=envelope.id, event_type=envelope.type, correlation_id=envelope.correlation_id
        )
        try:
            delivery = await self._process_while_database_away(envelope)
        except PermanentError as exc:
            await self._dead_letter(message, exc.code, str(exc), attempt)
            return
        except (ValidationError, UnknownEventError) as exc:
            await self._dead_letter(message, "invalid_payload", _short(exc), attempt)
            return
        except Exception as exc:
            await self._retry_or_dead_letter(message, exc, attempt)
            return
        if delivery is not None and delivery.emitted:
            self.relay.notify(len(delivery.emitted))
        await message.ack()

    async def _process_while_database_away(self, envelope: Envelope) -> Delivery | None:
        """Process; while the database does not answer, hold the message and try again.

        An outage is no fault of the message: it is neither acked nor handed back (which
        would spend its tries and, past the queue's delivery limit, dead-letter it), and
        the consumer's prefetch bounds how many messages wait like this.
        """
        delay = max(self.config.retry_backoff_seconds, 0.1)
        while True:
            try:
                return await self._process(envelope)
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

    async def _process(self, envelope: Envelope) -> Delivery | None:
        async with self.database.transaction() as session:
            if not await claim(session, self.name, envelope):
                log.info("duplicate event ignored")
                return None
            delivery = Delivery(session=session, envelope=envelope, source=self.config.service)
            await self.handler(delivery)
            return delivery

    async def _retry_or_dead_letter(
        self, message: RabbitMessage, exc: Exception, attempt: int
    ) -> None:
        if attempt >= self.config.max_deliveries:
            await self._dead_letter(
                message,
                "retries_exhausted",
                f"{type(exc).__name__}: {exc}",
                attempt,
                detail="".join(traceback.format_exception(exc))[-4000:],
            )
            return
        delay = self.config.retry_backoff_seconds * 2 ** (attempt - 1)
        log.warning(
            "handling failed; will retry", error=f"{type(exc).__name__}: {exc}", retry_in=delay
        )
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
        headers = dict(raw.headers or {})
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
        await message.ack()


MAX_OUTAGE_BACKOFF = 5.0


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
    return isinstance(exc, OSError | TimeoutError)


def _delivery_count(message: RabbitMessage) -> int:
    headers = message.raw_message.headers or {}
    count = headers.get("x-delivery-count", 0)
    return int(count) if isinstance(count, int | str) and str(count).isdigit() else 0


def _short(exc: Exception) -> str:
    return str(exc)[:2000]


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
        broker.subscriber(
            RabbitQueue(name, declare=False),
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_body,
            title=f"{consumer.name}:consume",
            description=description,
        )(consumer.__call__)
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
