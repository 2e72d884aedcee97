"""Connecting to a RabbitMQ cluster: one node that answers, another when it goes.

aio-pika's robust connection reconnects to the one URL it was given; on a cluster that
node may be the one that is gone. ``failover_connection_class`` makes a
``RobustConnection`` that knows every node:

- at start it tries the nodes in turn, from a random one (replicas spread over the
  nodes), and fails only when none answers (FastStream's ``fail_fast``);
- each time its connection closes, or an attempt fails, the next attempt goes to the
  next node: aio-pika calls ``_on_connection_close`` in both cases, and reads ``url``
  afresh at each attempt; its own loop (``reconnect_interval``) does the retrying and
  restores the channels and consumers on the new node.

The same class serves FastStream's broker (``connect_robust(connection_class=...)``,
which ``RabbitBroker`` calls with its connection arguments), our confirmed channels
(shared.publisher) and, for one-shot connections, ``connect_first`` tries the nodes in
turn. Publisher confirms are
the broker's: a quorum queue confirms once a majority of its replicas has the message,
and a publish whose confirm never came (its node went) fails, so the outbox keeps the
row and publishes it again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any, ClassVar

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractConnection, AbstractRobustConnection, TimeoutType
from aio_pika.robust_connection import RobustConnection
from faststream.rabbit import RabbitBroker
from yarl import URL

log = structlog.get_logger(__name__)

# A node that accepts TCP but does not answer (frozen, overloaded) must not hold a
# connection attempt forever: the next node is tried after this.
CONNECT_TIMEOUT_SECONDS = 10.0
# Between two attempts (aio-pika's default is 5 s): with other nodes to try, sooner.
RECONNECT_INTERVAL_SECONDS = 1.0


def node_urls(urls: str | Sequence[str]) -> list[str]:
    """One URL, or several (a sequence, or comma-separated), as a list."""
    if isinstance(urls, str):
        urls = urls.split(",")
    found = [u.strip() for u in urls if u.strip()]
    if not found:
        raise ValueError("no broker URL")
    return found


def where(url: URL) -> str:
    """host:port, for the log (never the credentials)."""
    return f"{url.host}:{url.port}"


class FailoverConnection(RobustConnection):
    """A robust connection that moves to the next node when its node goes. Made by
    ``failover_connection_class`` with its nodes."""

    NODES: ClassVar[tuple[URL, ...]] = ()

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any):
        super().__init__(url, loop=loop, **kwargs)
        self._nodes: tuple[URL, ...] = self.NODES or (self.url,)
        # From a random node: the replicas of a service spread over the cluster.
        self._node = random.randrange(len(self._nodes))
        self.url = self._nodes[self._node]

    def _next_node(self) -> None:
        if len(self._nodes) > 1:
            self._node = (self._node + 1) % len(self._nodes)
            self.url = self._nodes[self._node]

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # Called when the connection closes and when an attempt fails: either way the
        # next attempt goes to the next node.
        if not (self._close_called or self.is_closed):
            gone = where(self.url)
            self._next_node()
            log.warning("broker node lost", node=gone, next_node=where(self.url))
        await super()._on_connection_close(closing)

    async def connect(self, timeout: TimeoutType = None) -> None:
        # The first connection (and aio-pika's reconnect()): fail fast only when no node
        # answers, not when the first one tried does not.
        if len(self._nodes) > 1 and not self.connected.is_set():
            await self._find_a_node(timeout)
        await super().connect(timeout)

    async def _find_a_node(self, timeout: TimeoutType) -> None:
        error: Exception | None = None
        for _ in self._nodes:
            try:
                probe = await asyncio.wait_for(
                    aiormq.connect(self.url), timeout or CONNECT_TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
                error = exc
                log.warning("broker node not answering", node=where(self.url))
                self._next_node()
                continue
            await probe.close()
            return
        assert error is not None
        raise aiormq.exceptions.AMQPConnectionError(
            f"no broker node answers ({len(self._nodes)} tried): {error}"
        ) from error


def failover_connection_class(urls: str | Sequence[str]) -> type[FailoverConnection]:
    """A connection class for these nodes (``connection_class`` of aio-pika's
    ``connect_robust``)."""
    nodes = tuple(URL(u) for u in node_urls(urls))
    return type("FailoverConnection", (FailoverConnection,), {"NODES": nodes})


async def connect_robust(
    urls: str | Sequence[str], *, timeout: float = CONNECT_TIMEOUT_SECONDS
) -> AbstractRobustConnection:
    """A robust connection to one of the nodes, moving to another when it goes."""
    first = node_urls(urls)[0]
    return await aio_pika.connect_robust(
        first,
        timeout=timeout,
        reconnect_interval=RECONNECT_INTERVAL_SECONDS,
        connection_class=failover_connection_class(urls),
    )


async def connect_first(
    urls: str | Sequence[str], *, timeout: float = CONNECT_TIMEOUT_SECONDS
) -> AbstractConnection:
    """A plain (one-shot) connection to the first node that answers, in turn from a
    random one."""
    candidates = node_urls(urls)
    start = random.randrange(len(candidates))
    error: Exception | None = None
    for i in range(len(candidates)):
        url = candidates[(start + i) % len(candidates)]
        try:
            return await aio_pika.connect(url, timeout=timeout)
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
            error = exc
    assert error is not None
    if len(candidates) == 1:
        raise error
    raise aiormq.exceptions.AMQPConnectionError(
        f"no broker node answers ({len(candidates)} tried): {error}"
    ) from error


class ClusterRabbitBroker(RabbitBroker):
    """FastStream's RabbitMQ broker on every node of a cluster (or on one broker)."""

    def __init__(self, urls: str | Sequence[str], **kwargs: Any) -> None:
        nodes = node_urls(urls)
        kwargs.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
        kwargs.setdefault("reconnect_interval", RECONNECT_INTERVAL_SECONDS)
        super().__init__(nodes[0], **kwargs)
        # FastStream hands its connection arguments to aio-pika's connect_robust, which
        # builds the connection with ``connection_class``: ours knows every node.
        self._connection_kwargs["connection_class"] = failover_connection_class(nodes)
