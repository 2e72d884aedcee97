"""What the commands share: publishing an event as an outside actor."""

from __future__ import annotations

import asyncio

from shared.events import EventPayload
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import declare_topology


async def publish_async(
    settings: Settings, source: str, payload: EventPayload, correlation_id: str
) -> str:
    await declare_topology(settings.broker_url, settings.namespace)
    async with EventPublisher(settings.broker_url, settings.namespace, source) as publisher:
        envelope = await publisher.publish(payload, correlation_id=correlation_id)
    return envelope.id


def publish(settings: Settings, source: str, payload: EventPayload, correlation_id: str) -> str:
    """Publish one event (persistent, confirmed); returns its id."""
    return asyncio.run(publish_async(settings, source, payload, correlation_id))
