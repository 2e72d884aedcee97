"""Intake's broker door under arbitrary input: every message either becomes a referral,
gets a rejection its sender can read, or lands in the dead-letter queue with the error.
Never a crashed consumer, never a silent drop."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from aiguillage.processes import ServiceProcesses
from shared.events import Envelope
from shared.publisher import EventPublisher, broker_user
from shared.settings import Settings
from shared.topology import dead_letter_queue, declare_topology, events_exchange, ingress_exchange
from tests.helpers import referral
from tests.strategies import broker_bodies

pytestmark = pytest.mark.e2e


@pytest.fixture
def intake_process(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    asyncio.run(declare_topology(settings.broker_url, settings.namespace))
    procs = ServiceProcesses(
        {
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
        },
        tmp_path / "logs",
    )
    procs.start("intake")
    try:
        asyncio.run(_wait_intake(settings))
        yield settings
    finally:
        procs.stop()


async def _wait_intake(settings: Settings) -> None:
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        for _ in range(150):
            channel = await connection.channel()
            queue = await channel.declare_queue(
                f"{settings.namespace}.intake.submissions", passive=True
            )
            if queue.declaration_result.consumer_count:
                return
            await asyncio.sleep(0.2)
    raise TimeoutError("intake did not start")


async def _fate(settings: Settings, body: bytes) -> str:
    """Publish one body; say what became of it."""
    message_id = str(uuid.uuid4())
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        # Outsiders publish on the ingress, in their own name (the AMQP user_id).
        exchange = await channel.get_exchange(ingress_exchange(settings.namespace))
        bus = await channel.get_exchange(events_exchange(settings.namespace))
        answers = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in ("reply.#", "referral.rejected", "referral.received"):
            await answers.bind(bus, routing_key=key)
        dlq = await channel.declare_queue(
            dead_letter_queue(settings.namespace, "intake"), passive=True
        )
        envelope_id = None
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("id"), str):
            # Hypothesis replays examples: a fresh id, or the inbox rightly ignores the replay.
            envelope_id = document["id"] = str(uuid.uuid4())
            body = json.dumps(document).encode()
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                delivery_mode=2,
                user_id=broker_user(settings.broker_url),
            ),
            routing_key="referral.submitted",
        )
        # 15 s: a loaded machine (a parallel test run) answers in seconds, not ms.
        for _ in range(300):
            message = await answers.get(fail=False)
            if message is not None:
                await message.ack()
                data = Envelope.model_validate_json(message.body).data
                if data.get("source_message_id") == envelope_id or (
                    message.routing_key == "referral.received"
                ):
                    return message.routing_key or "?"
                continue
            letter = await dlq.get(fail=False)
            if letter is not None:
                await letter.ack()
                if letter.message_id in (message_id, envelope_id):
                    assert letter.headers["x-error-code"], letter.headers
                    assert letter.headers["x-error"]
                    return "dead-lettered"
                continue
            await asyncio.sleep(0.05)
    raise AssertionError(f"no answer, no rejection and no dead letter for {body[:200]!r}")


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=broker_bodies())
def test_arbitrary_messages_are_answered_or_dead_lettered(
    intake_process: Settings, body: bytes
) -> None:
    fate = asyncio.run(_fate(intake_process, body))
    assert fate in {
        "referral.received",
        "referral.rejected",
        "reply.prop.submission.acknowledged",
        "reply.prop.submission.error",
        "dead-lettered",
    }, fate


def test_the_consumer_still_serves_after_the_storm(intake_process: Settings) -> None:
    async def run() -> None:
        async with EventPublisher(intake_process.broker_url, intake_process.namespace, "t") as p:
            await p.publish_raw(b"\x00\x01", "referral.submitted")
        assert await _fate(
            intake_process,
            Envelope.wrap(referral("after-storm"), source="gp", correlation_id="x")
            .model_dump_json()
            .encode(),
        ) in {"referral.received", "reply.tests.submission.acknowledged"}

    asyncio.run(run())
