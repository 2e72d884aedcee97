"""Poison messages on every queue end in the dead-letter queue with the error and the
original, after a bounded number of tries, and the consumers keep serving; every event
delivered twice has one effect."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest

from shared.events import (
    CentreCapacityChanged,
    Envelope,
    EventPayload,
    ReferralWaitlisted,
    SlotAssigned,
)
from shared.publisher import EventPublisher, broker_user
from shared.settings import ServiceName
from shared.topology import SUBSCRIPTIONS, dead_letter_queue, events_exchange, ingress_exchange
from tests.faults.conftest import Cluster
from tests.faults.test_crashes import record

pytestmark = pytest.mark.faults

NOW = datetime.now(UTC)

# An event that its handler cannot process, ever, on the queues where one exists, and
# the dead-letter code it gets: a centre never activated, or a referral never known, is
# retried and then dead-lettered; identifiers longer than the columns that store them
# (which PostgreSQL refused, every time, before the contracts bounded them) are now
# refused by the contract at once.
LONG = "x" * 100
FAILS_EVERY_TIME: dict[str, tuple[EventPayload, str]] = {
    "scheduler.centres": (
        CentreCapacityChanged(centre_id="nowhere", boxes=2, from_date=NOW.date()),
        "retries_exhausted",
    ),
    "notifier.assignments": (
        SlotAssigned.model_construct(
            centre_id=LONG,
            appointment_id="a-x",
            referral_id="unknown-referral",
            patient_ref="pat-x",
            centre_name="x",
            centre_commune_insee="75115",
            start=NOW + timedelta(hours=1),
            end=NOW + timedelta(hours=1, minutes=20),
            box=1,
            priority="routine",
            distance_km=1.0,
        ),
        "invalid_payload",
    ),
    "notifier.referrals": (
        ReferralWaitlisted.model_construct(
            referral_id=LONG,
            patient_ref="pat-x",
            priority="routine",
            departement="75",
            reason="x",
            waiting_in_departement=1,
        ),
        "invalid_payload",
    ),
    "intake.outcomes": (
        ReferralWaitlisted(
            referral_id="unknown-referral",
            patient_ref="pat-x",
            priority="routine",
            departement="75",
            reason="x",
            waiting_in_departement=1,
        ),
        "retries_exhausted",
    ),
}


def _key(binding: str) -> str:
    return binding.replace("*", "poison").replace("#", "poison")


async def _dead_letters(url: str, namespace: str, service: str) -> list[Any]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(dead_letter_queue(namespace, service), passive=True)
        got = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            got.append(message)
        return got


async def test_poison_on_every_queue(cluster: Cluster) -> None:
    s = cluster.settings
    sent: dict[str, list[tuple[str, bytes]]] = {svc.value: [] for svc in ServiceName}
    async with EventPublisher(s.broker_url, s.namespace, "poison") as pub:
        for service, specs in SUBSCRIPTIONS.items():
            for spec in specs:
                key = _key(spec.bindings[0])
                not_json = f"not json for {spec.name(s.namespace)}".encode()
                # To the queue's own exchange: a bus key that is also an outsider's
                # (centre.activated) would otherwise go to the door of that name.
                await pub.publish_raw(
                    not_json, key, message_id=f"nj-{spec.subscription}", exchange=spec.exchange
                )
                wrong = Envelope(
                    type=spec.bindings[0].split(".*")[0],
                    source="poison",
                    correlation_id="poison",
                    data={"nonsense": True},
                )
                await pub.publish_envelope(wrong, key, exchange=spec.exchange)
                sent[service.value] += [
                    ("invalid_envelope", not_json),
                    ("invalid_payload", wrong.model_dump_json().encode()),
                ]
                case = FAILS_EVERY_TIME.get(f"{service.value}.{spec.subscription}")
                if case is not None:
                    failing, code = case
                    bad = Envelope.wrap(failing, source="poison", correlation_id="poison")
                    await pub.publish_envelope(bad, failing.routing_key(), exchange=spec.exchange)
                    sent[service.value].append((code, bad.model_dump_json().encode()))
    # The consumers keep serving.
    await cluster.burst(30, seed=11)
    await cluster.settle()
    figures = {}
    for service, expected in sent.items():
        letters: list[Any] = []
        for _ in range(60):
            letters += await _dead_letters(s.broker_url, s.namespace, service)
            if len(letters) >= len(expected):
                break
            await asyncio.sleep(0.5)
        got = {(m.headers["x-error-code"], m.body) for m in letters}
        for code, body in expected:
            if code == "invalid_payload":
                # Schema errors may also be named by the handler (unexpected event type).
                assert any(b == body for _, b in got), (service, code)
            else:
                assert (code, body) in got, (service, code, sorted(c for c, _ in got))
        for m in letters:
            assert m.headers["x-error"], m.headers
            assert m.headers["x-original-routing-key"]
            if m.headers["x-error-code"] == "retries_exhausted":
                assert m.headers["x-attempts"] == 3  # AIGUILLAGE_MAX_DELIVERIES
        figures[service] = len(letters)
    states = cluster.final_states()
    assert states["none"] == 0 and sum(states.values()) == 30
    record(
        "poison messages on every queue",
        {"dead_lettered_per_service": figures, "referrals_after": 30, "lost": 0},
    )


async def test_every_event_delivered_twice(cluster: Cluster) -> None:
    """A publisher that duplicates everything on the exchange: no effect happens twice."""
    s = cluster.settings
    duplicated = 0
    connection = await aio_pika.connect_robust(s.broker_url)
    channel = await connection.channel(publisher_confirms=True)
    # Both exchanges: what the services publish, and what outsiders send to the doors.
    exchanges = {
        name: await channel.get_exchange(name)
        for name in (events_exchange(s.namespace), ingress_exchange(s.namespace))
    }
    tap = await channel.declare_queue(exclusive=True, auto_delete=True)
    for exchange in exchanges.values():
        await tap.bind(exchange, routing_key="#")

    async def duplicate(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal duplicated
        async with message.process():
            if (message.headers or {}).get("x-duplicate"):
                return
            copy = aio_pika.Message(
                message.body,
                headers={**(message.headers or {}), "x-duplicate": 1},
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                type=message.type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=broker_user(s.broker_url),
            )
            exchange = exchanges[message.exchange or events_exchange(s.namespace)]
            await exchange.publish(copy, routing_key=message.routing_key or "")
            duplicated += 1

    await tap.consume(duplicate)
    try:
        await cluster.burst(120, seed=13, pause=0.01)
        await cluster.settle()
    finally:
        await connection.close()
    states = cluster.final_states()
    assert states["none"] == 0 and sum(states.values()) == 120
    duplicates = cluster.duplicates()
    assert duplicates == {}, cluster.story(duplicates)
    rows = await cluster.notifications()
    keys = [(r.cause_event_id, r.recipient_kind, r.channel) for r in rows]
    assert len(keys) == len(set(keys))
    assert duplicated > 120 * 3
    record(
        "every event delivered twice",
        {
            "referrals": 120,
            "events_duplicated": duplicated,
            "final_states": dict(states),
            "duplicate_effects": 0,
        },
    )
    print(json.dumps({"duplicated": duplicated}))
