"""Connecting to a cluster: the node list, and the move to the next node when one goes."""

from __future__ import annotations

import asyncio

import pytest
from yarl import URL

from shared.broker_nodes import failover_connection_class, node_urls
from shared.settings import Settings

NODES = [f"amqp://u:p@node-{i}:5672/vh?heartbeat=10" for i in (1, 2, 3)]


def test_one_url_or_several() -> None:
    assert node_urls("amqp://a/") == ["amqp://a/"]
    assert node_urls(" amqp://a/ , amqp://b/,") == ["amqp://a/", "amqp://b/"]
    assert node_urls(NODES) == NODES
    with pytest.raises(ValueError, match="no broker URL"):
        node_urls("")


def test_settings_give_every_node_and_default_the_single_url_to_the_first() -> None:
    cluster = Settings(broker_urls=",".join(NODES))
    assert cluster.broker_nodes == NODES
    assert cluster.broker_url == NODES[0]
    single = Settings(broker_url="amqp://x/")
    assert single.broker_nodes == ["amqp://x/"]


async def test_the_next_attempt_goes_to_the_next_node() -> None:
    connection_class = failover_connection_class(NODES)
    connection = connection_class(URL(NODES[0]))
    seen = [connection.url.host]
    for _ in range(4):
        closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        closing.set_exception(ConnectionError("gone"))
        # What aio-pika calls when the connection drops or an attempt fails.
        await connection._on_connection_close(closing)
        seen.append(connection.url.host)
    # From a random node, then each in turn, round and round.
    start = NODES.index(next(n for n in NODES if URL(n).host == seen[0]))
    assert seen == [URL(NODES[(start + i) % 3]).host for i in range(5)]
    assert connection.url.query["heartbeat"] == "10"  # each node's own URL, whole
