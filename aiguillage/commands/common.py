"""What the commands share: publishing an event as an outside actor."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from aiguillage.reach import http_api, reaching
from shared.auth import Role, issue_token
from shared.events import EventPayload
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import declare_topology


async def publish_async(
    settings: Settings, source: str, payload: EventPayload, correlation_id: str
) -> str:
    await declare_topology(settings.broker_nodes, settings.namespace)
    async with EventPublisher(settings.broker_nodes, settings.namespace, source) as publisher:
        envelope = await publisher.publish(payload, correlation_id=correlation_id)
    return envelope.id


def publish(settings: Settings, source: str, payload: EventPayload, correlation_id: str) -> str:
    """Publish one event (persistent, confirmed); returns its id."""
    return asyncio.run(publish_async(settings, source, payload, correlation_id))


class ApiError(Exception):
    """A service's HTTP API did not answer as expected (said in one line)."""


async def get_from_service(
    settings: Settings, service: ServiceName, role: Role, subject: str, path: str
) -> dict[str, Any]:
    """GET on a local service's HTTP API, with a token issued from the auth secret."""
    port = settings.http_port(service)
    if port is None:
        raise ApiError(f"{service.value} serves no HTTP API (its HTTP port setting is empty)")
    url = f"http://127.0.0.1:{port}{path}"
    token = issue_token(settings, role, subject, service)
    # Not answering: one line and exit 2, said at the command's top (aiguillage/errors.py).
    with reaching(http_api(service, port)):
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise ApiError(f"{url}: HTTP {response.status_code} {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body
