"""Publishing from outside a service (operators, the ARS, referrers, tests, the demo):
persistent messages with publisher confirms, no outbox since there is no state."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from shared.events import Envelope, EventPayload
from shared.topology import events_exchange


class EventPublisher:
    def __init__(self, url: str, namespace: str, source: str) -> None:
        self.url = url
        self.namespace = namespace
        self.source = source
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def __aenter__(self) -> Self:
        self._connection = await aio_pika.connect_robust(self.url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.get_exchange(events_exchange(self.namespace))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(
        self,
        payload: EventPayload,
        *,
        correlation_id: str,
        routing_key: str | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        envelope = Envelope.wrap(
            payload, source=self.source, correlation_id=correlation_id, event_id=event_id
        )
        await self.publish_envelope(envelope, routing_key or payload.routing_key())
        return envelope

    async def publish_envelope(self, envelope: Envelope, routing_key: str) -> None:
        await self.publish_raw(
            envelope.model_dump_json().encode(),
            routing_key,
            message_id=envelope.id,
            correlation_id=envelope.correlation_id,
            message_type=envelope.type,
        )

    async def publish_raw(
        self,
        body: bytes,
        routing_key: str,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        message_type: str | None = None,
    ) -> None:
        """Any bytes, on any key: tests use it for malformed messages."""
        assert self._exchange is not None, "use EventPublisher as an async context manager"
        await self._exchange.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
                message_id=message_id,
                correlation_id=correlation_id,
                type=message_type,
                app_id=self.source,
            ),
            routing_key=routing_key,
        )
