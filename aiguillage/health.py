"""Is a service consuming? Checked on the broker, the way its users see it."""

from __future__ import annotations

import aio_pika

from shared.settings import ServiceName, Settings
from shared.topology import SUBSCRIPTIONS


async def consumers_attached(settings: Settings, service: ServiceName) -> list[str]:
    """The service's queues that have no consumer (empty: the service is consuming)."""
    connection = await aio_pika.connect(settings.broker_url, timeout=5)
    missing = []
    try:
        for spec in SUBSCRIPTIONS[service]:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(spec.name(settings.namespace), passive=True)
                if not queue.declaration_result.consumer_count:
                    missing.append(queue.name)
            except aio_pika.exceptions.ChannelClosed:
                missing.append(spec.name(settings.namespace))
    finally:
        await connection.close()
    return missing
