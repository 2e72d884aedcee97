"""A service process: its broker connection, database, outbox relay and consumers,
assembled into one FastStream application."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream import FastStream
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange
from faststream.rabbit.schemas import Channel
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from shared import tracing
from shared.broker_nodes import ClusterRabbitBroker, connect_first
from shared.consumer import (
    Consumer,
    ConsumerConfig,
    Gate,
    Handler,
    LockOrder,
    Prepare,
    register,
)
from shared.db import Database, as_utc
from shared.events import Envelope, EventPayload, utcnow
from shared.events.versions import set_emit_versions
from shared.http import (
    BodyLimit,
    HttpServer,
    Proxies,
    SecurityHeaders,
    add_health_routes,
    allow_every_method,
    write_port_file,
)
from shared.metrics import HttpMetrics, ServiceMetrics
from shared.migrations import upgrade
from shared.outbox import OutboxRelay, OutgoingEvent
from shared.provisioning import service_account
from shared.publisher import ConfirmedChannel
from shared.release import VERSION
from shared.retention import PurgeOptions, Step, run_purge
from shared.routing import Route, check_routes, dispatcher, subscriptions
from shared.senders import ACTOR_HEADER, SenderPolicy
from shared.settings import ServiceName, Settings
from shared.territory import OutsideTerritory, Territories
from shared.topology import (
    DEAD_LETTER_MAX_LENGTH,
    SUBSCRIPTIONS,
    dead_letter_queue,
    declare_topology,
    events_exchange,
    ingress_exchange,
)

log = structlog.get_logger(__name__)

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class ConsumeOptions:
    """What a queue's consumer does besides handling: see ``ServiceRuntime.consume``."""

    order: LockOrder | None = None
    prepare: Prepare | None = None
    gate: Gate | None = None


DEAD_LETTER_CHECK_SECONDS = 30.0
DEAD_LETTER_ALERT = 0.8  # of the bound


def make_broker(settings: Settings, service: str) -> RabbitBroker:
    # Every node of a cluster: the connection moves to another when its node goes, and
    # aio-pika's robust channels attach the consumers again there.
    return ClusterRabbitBroker(
        settings.broker_nodes,
        app_id=service,
        default_channel=Channel(prefetch_count=settings.prefetch, publisher_confirms=True),
        graceful_timeout=15.0,
        description=f"Aiguillage {service}",
        # Our consumers log each delivery themselves, with redaction.
        log_level=10,
    )


async def _outside_territory(request: Request, exc: Exception) -> JSONResponse:
    code = getattr(exc, "code", "outside_territory")
    return JSONResponse(status_code=403, content={"detail": str(exc), "error_code": code})


def events_exchange_ref(namespace: str) -> RabbitExchange:
    return RabbitExchange(
        events_exchange(namespace), type=ExchangeType.TOPIC, durable=True, declare=False
    )


@dataclass
class ServiceRuntime:
    service: ServiceName
    settings: Settings
    migrations: str  # Alembic script location, e.g. "services.intake:migrations"
    # On FastStream's in-memory broker (TestRabbitBroker): no topology to declare, and
    # subscribers bound by routing key so that the fake broker routes like the real one.
    in_memory: bool = False
    broker: RabbitBroker = field(init=False)
    database: Database = field(init=False)
    relay: OutboxRelay = field(init=False)
    consumers: list[Consumer] = field(default_factory=list, init=False)
    metrics: ServiceMetrics = field(init=False)
    _startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list, init=False)
    _shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list, init=False)
    # What the service purges past its retention, every purge_interval_minutes (issue 34).
    _purge_steps: list[Step] = field(default_factory=list, init=False)
    _purger: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.broker = make_broker(self.settings, self.service.value)
        self.database = Database(self.settings.database_url(self.service))
        # The versions it emits while its consumers are older (a type it cannot: not started).
        set_emit_versions(self.service.value, self.settings.emit_versions)
        # This runtime's own registry (tests run several services in one process).
        self.metrics = ServiceMetrics(self.service.value)
        self.database.observe = self.metrics.transactions.observe
        self.metrics.on_collect(self._outbox_figures)
        self.http_app = FastAPI(
            title=f"Aiguillage {self.service.value}",
            description=f"HTTP API of the {self.service.value} service.",
            **tracing.NO_FASTAPI_TELEMETRY,
        )
        # Every HTTP door bounds what it reads (413), before routing or authentication.
        self.http_app.add_middleware(BodyLimit, max_bytes=self.settings.max_body_bytes)
        # Outermost: every answer, the 413 too, is no-store (identities, statuses) and
        # HSTS over TLS.
        self.http_app.add_middleware(
            SecurityHeaders, proxies=Proxies(self.settings.trusted_proxies)
        )
        allow_every_method(self.http_app)
        # Each request a span, the door of a referral's trace (shared.tracing).
        self.http_app.add_middleware(tracing.HttpSpans, service=self.service.value)
        # Each answer counted (shared.metrics), by route template and status class.
        self.http_app.add_middleware(HttpMetrics, metrics=self.metrics)
        # A SAMU acting on another territory's referral: 403 with a stable code.
        self.http_app.add_exception_handler(OutsideTerritory, _outside_territory)
        add_health_routes(
            self.http_app,
            {
                "broker": self._broker_ready,
                "database": self._database_ready,
                "consumers": self._consumers_ready,
            },
            self._ready_details,
            version=VERSION,
        )
        self.http: HttpServer | None = None
        self.http_app.add_api_route(
            "/metrics",
            self._metrics,
            methods=["GET"],
            tags=["operations"],
            summary="Prometheus figures of this service",
            response_class=Response,
            # Prometheus's text format, for the scraper (docs/operations/runbook.md), not
            # an API of the service's actors.
            include_in_schema=False,
        )
        # Set on SIGTERM: /ready answers 503 from then on (a load balancer stops sending).
        self.draining = False
        self._exchange = events_exchange_ref(self.settings.namespace)
        # Publishes go on a channel of their own, in this service's user's name: a
        # refusal closes that channel only, and it opens again for the next event.
        self.channel = ConfirmedChannel(self.settings.broker_nodes, self.service.value)
        # The keys this service's broker user may publish on the bus, as provisioned:
        # the relay sets aside, without trying, a row the broker would refuse.
        allowed = re.compile(service_account(self.settings.namespace, self.service).topic_write)
        self.relay = OutboxRelay(
            self.database,
            self.publish,
            poll_seconds=self.settings.outbox_poll_seconds,
            batch=self.settings.outbox_batch,
            high_water=self.settings.outbox_high_water,
            may_publish=None if self.in_memory else lambda key: bool(allowed.search(key)),
        )
        self._watcher: asyncio.Task[None] | None = None
        self.senders = SenderPolicy(
            frozenset(self.settings.broker_operators),
            self.settings.broker_user_suffix,
            territories=Territories.of(self.settings),
        )

    async def _metrics(self) -> Response:
        body, content_type = await self.metrics.exposition()
        return Response(body, media_type=content_type)

    async def _outbox_figures(self, metrics: ServiceMetrics) -> None:
        pending, oldest, set_aside = await self.relay.figures()
        metrics.outbox_pending.set(pending)
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        metrics.outbox_oldest.set(max(0.0, age))
        metrics.outbox_set_aside.set(set_aside)

    async def publish(self, event: OutgoingEvent) -> None:
        """Publish one event, persistent, and wait for the broker's confirm."""
        if self.in_memory:
            await self.broker.publish(
                event.body,
                exchange=self._exchange,
                routing_key=event.routing_key,
                persist=True,
                message_id=event.event_id,
                correlation_id=event.correlation_id,
                message_type=event.event_type,
                content_type="application/json",
                headers=tracing.headers(event.traceparent),
            )
            return
        await self.channel.publish(
            events_exchange(self.settings.namespace),
            event.routing_key,
            event.body,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            message_type=event.event_type,
            headers=tracing.headers(event.traceparent),
        )

    async def publish_at_door(
        self, payload: EventPayload, *, actor: str, correlation_id: str
    ) -> Envelope:
        """An HTTP API that is an actor's door (contracts.HTTP_DOORS) sends what the actor
        asked on the ingress, in the actor's name, to the door's consumer that checks and
        applies it: the same path as the actor's own broker messages."""
        envelope = Envelope.wrap(payload, source=self.service.value, correlation_id=correlation_id)
        # The HTTP door's span: the root of the referral's trace (shared.tracing).
        with tracing.span(
            f"{self.service.value} door {envelope.type}",
            service=self.service.value,
            referral_id=correlation_id,
            kind=SpanKind.PRODUCER,
        ):
            await self.channel.publish(
                ingress_exchange(self.settings.namespace),
                payload.routing_key(),
                envelope.model_dump_json().encode(),
                message_id=envelope.id,
                correlation_id=correlation_id,
                message_type=envelope.type,
                headers={ACTOR_HEADER: actor, **(tracing.headers(tracing.traceparent()) or {})},
            )
        return envelope

    def consume(
        self,
        subscription: str,
        handler: Handler,
        order: LockOrder | None = None,
        prepare: Prepare | None = None,
        gate: Gate | None = None,
    ) -> None:
        """Attach ``handler`` to this service's queue ``subscription`` (from the topology).
        ``order``: the key of the rows the handler locks, for group commit to take a
        batch's deliveries in one order. ``prepare``: the work a group-committed batch
        does once, before its handlers (``shared.consumer.Prepare``). ``gate``: a door's
        checks that need no database, before a delivery joins a batch."""
        spec = next(s for s in SUBSCRIPTIONS[self.service] if s.subscription == subscription)
        consumer = Consumer(
            ConsumerConfig(
                namespace=self.settings.namespace,
                service=self.service.value,
                max_deliveries=self.settings.max_deliveries,
                retry_backoff_seconds=self.settings.retry_backoff_seconds,
                senders=self.senders,
                max_message_bytes=self.settings.max_message_bytes,
                in_memory=self.in_memory,
                max_batch=min(self.settings.batch_max, self.settings.prefetch),
                batch_window_seconds=self.settings.batch_window_ms / 1000,
                metrics=self.metrics,
            ),
            spec,
            handler,
            self.database,
            self.relay,
            self.broker,
            order,
            prepare,
            gate,
        )
        register(self.broker, consumer, self._exchange if self.in_memory else None)
        self.consumers.append(consumer)

    def route(
        self,
        owner: H,
        routes: Sequence[Route[H]],
        options: Mapping[str, ConsumeOptions] | None = None,
    ) -> None:
        """Consume every queue of the service's table (``app.py``'s ``ROUTES``), each
        delivery going to its event type's handler on ``owner``. ``options``: per queue,
        the ``order``, ``prepare`` and ``gate`` of ``consume``. Refuses to wire a table
        that disagrees with the queues' bindings (``shared.routing.check_routes``)."""
        problems = check_routes(self.service, routes)
        if problems:
            raise ValueError(f"{self.service.value}'s routes: " + "; ".join(problems))
        for subscription in subscriptions(routes):
            extra = (options or {}).get(subscription, ConsumeOptions())
            self.consume(
                subscription,
                dispatcher(owner, routes, subscription),
                order=extra.order,
                prepare=extra.prepare,
                gate=extra.gate,
            )

    def retain(self, steps: Sequence[Step]) -> None:
        """Purge ``steps`` (the service's ``handlers.retention``) on a schedule, every
        ``purge_interval_minutes`` (0: never; `aiguillage purge` does it then)."""
        self._purge_steps = list(steps)

    async def _purge_periodically(self) -> None:
        interval = self.settings.purge_interval_minutes * 60
        options = PurgeOptions(
            self.settings.purge_batch, self.settings.purge_pause_ms / 1000, "schedule"
        )
        while True:
            await asyncio.sleep(interval)
            try:
                await run_purge(self.database, self._purge_steps, utcnow(), options)
            except Exception as exc:  # the database is away: the next run goes on
                log.warning("purge failed; the next one goes on", error=str(exc)[:200])

    def on_startup(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._startup.append(hook)

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._shutdown.append(hook)

    async def prepare(self) -> None:
        """Migrate the database and declare the topology, before any consumer starts."""
        await upgrade(self.database, self.migrations)
        if not self.in_memory:
            await declare_topology(self.settings.broker_nodes, self.settings.namespace)
        for hook in self._startup:
            await hook()

    async def _ready_details(self) -> dict[str, Any]:
        # Not a readiness failure (the service works on), but what an operator must see.
        return {
            "outbox_set_aside": await self.relay.set_aside_count(),
            "dead_letters": await self._dead_letter_depth(),
        }

    async def _dead_letter_depth(self) -> int | None:
        """Messages in this service's dead-letter queue (a passive declaration: no
        permission needed). The queue is bounded and drops its oldest when full."""
        if self.in_memory:
            return None
        connection = await connect_first(self.settings.broker_nodes)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                dead_letter_queue(self.settings.namespace, self.service.value), passive=True
            )
            return queue.declaration_result.message_count
        finally:
            await connection.close()

    async def _watch_dead_letters(self) -> None:
        """The alert when the dead-letter queue fills: an error log line every check while
        it is over ``DEAD_LETTER_ALERT`` of its bound (past the bound the oldest go)."""
        while True:
            await asyncio.sleep(DEAD_LETTER_CHECK_SECONDS)
            try:
                depth = await self._dead_letter_depth()
            except Exception as exc:  # the broker is away: the next check will tell
                log.warning("dead-letter queue not checked", error=str(exc)[:200])
                continue
            if depth is not None and depth >= DEAD_LETTER_ALERT * DEAD_LETTER_MAX_LENGTH:
                log.error(
                    "dead-letter queue filling",
                    dead_letters=depth,
                    bound=DEAD_LETTER_MAX_LENGTH,
                    queue=dead_letter_queue(self.settings.namespace, self.service.value),
                )

    async def _broker_ready(self) -> bool:
        return await self.broker.ping(timeout=2)

    async def _database_ready(self) -> bool:
        async with self.database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    async def _consumers_ready(self) -> bool:
        if self.draining:
            return False
        return all(subscriber.running for subscriber in self.broker.subscribers)

    async def started(self) -> None:
        if not self.in_memory:
            await self.channel.open()
            self._watcher = asyncio.create_task(self._watch_dead_letters(), name="dlq-watch")
        self.relay.start()
        if self._purge_steps and self.settings.purge_interval_minutes > 0:
            self._purger = asyncio.create_task(self._purge_periodically(), name="purge")
        port = self.settings.http_port(self.service)
        if port is not None and not self.in_memory:
            self.http = HttpServer(self.http_app, self.settings.http_host, port)
            await self.http.start()
            if self.settings.port_file_dir is not None:
                write_port_file(self.settings.port_file_dir, self.service.value, self.http.port)
        log.info("service started", namespace=self.settings.namespace)

    async def stopping(self) -> None:
        # The hand-over (SIGTERM): not ready from now on; every consumer stops taking
        # deliveries at once (each stop marks its subscriber stopped before it waits),
        # and those in hand finish and are acknowledged, for up to the broker's graceful
        # timeout; then relay what they committed while the connection is still open.
        # What the broker sent but no handler took yet goes back to the queue unacked.
        self.draining = True
        log.info("service stopping: finishing the deliveries in hand")
        await asyncio.gather(*(subscriber.stop() for subscriber in self.broker.subscribers))
        for hook in self._shutdown:
            await hook()
        await self.relay.stop()
        if self.http is not None:
            await self.http.stop()

    async def stopped(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self._purger is not None:
            self._purger.cancel()
        await self.channel.close()
        await self.database.dispose()
        log.info("service stopped")

    def app(self) -> FastStream:
        # Before anything connects: in production a public or short secret stops the
        # start here (UnsafeSecrets: one line from the command), in development a warning.
        self.settings.check_secrets(self.service.value)
        tracing.configure(self.service.value, self.settings.tracing)
        return FastStream(
            self.broker,
            on_startup=[self.prepare],
            after_startup=[self.started],
            on_shutdown=[self.stopping],
            after_shutdown=[self.stopped],
        )
