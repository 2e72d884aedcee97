"""Dead letters expire (issue 34): the provisioning's message-ttl policy on the
dead-letter queues, on the real broker. They are quorum queues, which honour a TTL
from RabbitMQ 3.10; the policy here is the provisioning's with a one-second TTL."""

from __future__ import annotations

import asyncio
import shutil
import time

import aio_pika
import pytest

from shared.events import new_id
from shared.provisioning import Rabbitmqctl, dead_letter_policy
from shared.topology import DEAD_LETTER_QUEUE_ARGUMENTS, dead_letter_queue

pytestmark = pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="no rabbitmqctl")


async def test_a_dead_letter_past_its_ttl_is_gone(broker_url: str) -> None:
    namespace = f"ttl-{new_id()[:8]}"
    policy = dead_letter_policy(namespace, "/", 30) | {"definition": {"message-ttl": 1000}}
    ctl = Rabbitmqctl(timeout=60)
    await asyncio.to_thread(ctl.import_definitions, {"policies": [policy]})
    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            dead_letter_queue(namespace, "intake"),
            durable=True,
            arguments=DEAD_LETTER_QUEUE_ARGUMENTS,
        )
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}", delivery_mode=2), routing_key=queue.name
            )
            kept = await queue.get(fail=False)
            assert kept is not None, "a fresh dead letter is kept"
            await kept.nack(requeue=True)
            deadline = time.monotonic() + 30
            while (message := await queue.get(fail=False)) is not None:
                await message.nack(requeue=True)
                assert time.monotonic() < deadline, "the dead letter never expired"
                await asyncio.sleep(0.2)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
        await asyncio.to_thread(ctl.run, "clear_policy", "--vhost", "/", policy["name"])
