"""A service process: its broker connection, database, outbox relay and consumers,
assembled into one FastStream application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI
from faststream import FastStream
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange
from faststream.rabbit.schemas import Channel
from sqlalchemy import text

from shared.consumer import Consumer, ConsumerConfig, Handler, register
from shared.db import Database
from shared.http import HttpServer, add_health_routes
from shared.migrations import upgrade
from shared.outbox import OutboxRelay, OutgoingEvent
from shared.settings import ServiceName, Settings
from shared.topology import SUBSCRIPTIONS, declare_topology, events_exchange

log = structlog.get_logger(__name__)


def make_broker(settings: Settings, service: str) -> RabbitBroker:
    return RabbitBroker(
        settings.broker_url,
        app_id=service,
        default_channel=Channel(prefetch_count=settings.prefetch, publisher_confirms=True),
        graceful_timeout=15.0,
        description=f"Aiguillage {service}",
        # Our consumers log each delivery themselves, with redaction.
        log_level=10,
    )


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
    _startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list, init=False)
    _shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.broker = make_broker(self.settings, self.service.value)
        self.database = Database(self.settings.database_url(self.service))
        self.http_app = FastAPI(
            title=f"Aiguillage {self.service.value}",
            description=f"HTTP API of the {self.service.value} service.",
        )
        add_health_routes(
            self.http_app,
            {
                "broker": self._broker_ready,
                "database": self._database_ready,
                "consumers": self._consumers_ready,
            },
        )
        self.http: HttpServer | None = None
        self._exchange = events_exchange_ref(self.settings.namespace)
        self.relay = OutboxRelay(
            self.database,
            self.publish,
            poll_seconds=self.settings.outbox_poll_seconds,
            batch=self.settings.outbox_batch,
            high_water=self.settings.outbox_high_water,
        )

    async def publish(self, event: OutgoingEvent) -> None:
        """Publish one event, persistent, and wait for the broker's confirm."""
        await self.broker.publish(
            event.body,
            exchange=self._exchange,
            routing_key=event.routing_key,
            persist=True,
            mandatory=False,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            message_type=event.event_type,
            content_type="application/json",
        )

    def consume(self, subscription: str, handler: Handler) -> None:
        """Attach ``handler`` to this service's queue ``subscription`` (from the topology)."""
        spec = next(s for s in SUBSCRIPTIONS[self.service] if s.subscription == subscription)
        consumer = Consumer(
            ConsumerConfig(
                namespace=self.settings.namespace,
                service=self.service.value,
                max_deliveries=self.settings.max_deliveries,
                retry_backoff_seconds=self.settings.retry_backoff_seconds,
            ),
            spec,
            handler,
            self.database,
            self.relay,
            self.broker,
        )
        register(self.broker, consumer, self._exchange if self.in_memory else None)
        self.consumers.append(consumer)

    def on_startup(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._startup.append(hook)

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._shutdown.append(hook)

    async def prepare(self) -> None:
        """Migrate the database and declare the topology, before any consumer starts."""
        await upgrade(self.database, self.migrations)
        if not self.in_memory:
            await declare_topology(self.settings.broker_url, self.settings.namespace)
        for hook in self._startup:
            await hook()

    async def _broker_ready(self) -> bool:
        return await self.broker.ping(timeout=2)

    async def _database_ready(self) -> bool:
        async with self.database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    async def _consumers_ready(self) -> bool:
        return all(subscriber.running for subscriber in self.broker.subscribers)

    async def started(self) -> None:
        self.relay.start()
        port = self.settings.http_port(self.service)
        if port is not None and not self.in_memory:
            self.http = HttpServer(self.http_app, self.settings.http_host, port)
            await self.http.start()
        log.info("service started", namespace=self.settings.namespace)

    async def stopping(self) -> None:
        # Stop taking deliveries and let those in hand finish, then relay what they
        # committed while the connection is still open.
        for subscriber in self.broker.subscribers:
            await subscriber.stop()
        for hook in self._shutdown:
            await hook()
        await self.relay.stop()
        if self.http is not None:
            await self.http.stop()

    async def stopped(self) -> None:
        await self.database.dispose()
        log.info("service stopped")

    def app(self) -> FastStream:
        return FastStream(
            self.broker,
            on_startup=[self.prepare],
            after_startup=[self.started],
            on_shutdown=[self.stopping],
            after_shutdown=[self.stopped],
        )
