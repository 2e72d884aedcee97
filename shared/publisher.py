"""Publishing with publisher confirms, in the publisher's own name.

Every message carries ``user_id``, the user of the connection (RabbitMQ refuses one
that differs): a door believes nothing else about who sent it (shared.senders).

- ``ConfirmedChannel``: one channel with confirms, opened again when the broker closed
  it (an ACCESS_REFUSED closes the channel: it must not stop every later publish);
  a refusal by the broker is ``PublishRefused``, which retrying cannot mend.
- ``EventPublisher``: publishing from outside a service (operators, the ARS, referrers,
  tests, the demo): what outside actors send goes to the ingress exchange, anything
  else (tests playing a service) to the events exchange. No outbox: no state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity

from shared import broker_nodes
from shared.contracts import INGRESS_TYPES
from shared.events import Envelope, EventPayload
from shared.senders import ACTOR_HEADER
from shared.topology import events_exchange, ingress_exchange


def broker_user(url: str) -> str:
    """The user an AMQP URL connects as (RabbitMQ's default, ``guest``, when none)."""
    return unquote(urlsplit(url).username or "guest")


def is_ingress_key(routing_key: str) -> bool:
    """Whether an outside actor's message on this key goes to the ingress."""
    return any(routing_key == t or routing_key.startswith(f"{t}.") for t in INGRESS_TYPES)


# Longer than any confirm a healthy broker takes under load.
CONFIRM_TIMEOUT_SECONDS = 30.0


class PublishRefused(Exception):
    """The broker refused this publish (access refused, no such exchange): trying the
    same message again cannot succeed."""


class ConfirmedChannel:
    def __init__(self, url: str | Sequence[str], app_id: str) -> None:
        # One URL, or every node of a cluster (the same user on each): the connection
        # moves to another node when its node goes (shared.broker_nodes).
        self.urls = broker_nodes.node_urls(url)
        self.url = self.urls[0]
        self.app_id = app_id
        self.user = broker_user(self.url)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._connection is None:
            self._connection = await broker_nodes.connect_robust(self.urls)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
            self._channel = None

    async def _exchange(self, name: str) -> AbstractExchange:
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                await self.open()
                assert self._connection is not None
                self._channel = await self._connection.channel(publisher_confirms=True)
                self._exchanges = {}
            if name not in self._exchanges:
                self._exchanges[name] = await self._channel.get_exchange(name, ensure=False)
            return self._exchanges[name]

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        message_type: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish, persistent, and wait for the broker's confirm."""
        target = await self._exchange(exchange)
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
            message_id=message_id,
            correlation_id=correlation_id,
            type=message_type,
            app_id=self.app_id,
            user_id=self.user,
            headers=dict(headers) if headers else None,
        )
        try:
            # Bounded: a node that takes the message but cannot reach its queues' quorum
            # (cut off) never confirms; the caller (the outbox) tries again.
            await target.publish(
                message, routing_key=routing_key, mandatory=False, timeout=CONFIRM_TIMEOUT_SECONDS
            )
        except (ChannelAccessRefused, ChannelNotFoundEntity) as exc:
            raise PublishRefused(f"{type(exc).__name__}: {exc}") from exc


class EventPublisher:
    def __init__(
        self, url: str | Sequence[str], namespace: str, source: str, *, actor: str | None = None
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.source = source
        # With an operator's user: the actor it acts for (shared.senders).
        self.actor = actor
        self._channel = ConfirmedChannel(url, source)

    async def __aenter__(self) -> Self:
        await self._channel.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._channel.close()

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

    async def publish_envelope(
        self, envelope: Envelope, routing_key: str, *, exchange: str | None = None
    ) -> None:
        await self.publish_raw(
            envelope.model_dump_json().encode(),
            routing_key,
            message_id=envelope.id,
            correlation_id=envelope.correlation_id,
            message_type=envelope.type,
            exchange=exchange,
        )

    async def publish_raw(
        self,
        body: bytes,
        routing_key: str,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        message_type: str | None = None,
        exchange: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Any bytes, on any key (tests use it for malformed messages). ``exchange``:
        ``ingress`` or ``events``; by default the ingress for what outsiders send."""
        if exchange is None:
            exchange = "ingress" if is_ingress_key(routing_key) else "events"
        name = (
            ingress_exchange(self.namespace)
            if exchange == "ingress"
            else events_exchange(self.namespace)
        )
        all_headers = dict(headers or {})
        if self.actor is not None:
            all_headers.setdefault(ACTOR_HEADER, self.actor)
        await self._channel.publish(
            name,
            routing_key,
            body,
            message_id=message_id,
            correlation_id=correlation_id,
            message_type=message_type,
            headers=all_headers,
        )
