"""Intake's broker door: de-duplication, conflicts, answers that name their message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from services.intake.app import build
from shared.events import Referrer, ReferrerKind
from shared.messaging_tables import refusals
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.topology import declare_topology
from tests.helpers import Tap, referral, running


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build(settings)
    async with running(runtime):
        yield runtime


async def test_same_referral_twice_and_in_conflict(
    settings: Settings, intake: ServiceRuntime
) -> None:
    s = settings
    async with Tap(s.broker_url, s.namespace, "reply.#", "referral.*") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            first = await gp.publish(referral("dup-1"), correlation_id="a")
            await tap.wait_for(lambda es: len(es) >= 2)
            second = await gp.publish(referral("dup-1"), correlation_id="b")
            conflicting = referral("dup-1", insee="75056")
            third = await gp.publish(conflicting, correlation_id="c")
        await tap.wait_for(lambda es: len([e for e in es if e.type.startswith("submission.")]) == 3)
    [received] = tap.of_type("referral.received")
    acks = {e.data["source_message_id"]: e.data for e in tap.of_type("submission.acknowledged")}
    assert acks[first.id]["duplicate"] is False
    assert acks[second.id]["duplicate"] is True
    assert acks[first.id]["referral_id"] == acks[second.id]["referral_id"]
    assert acks[first.id]["referral_id"] == received.data["referral_id"]
    [error] = tap.of_type("submission.error")
    assert error.data["source_message_id"] == third.id
    assert error.data["error_code"] == "reference_conflict"
    assert error.data["referral_id"] == received.data["referral_id"]
    # The conflict is the sender's answer alone: the referral it names has not changed,
    # so nothing goes downstream (no referral.rejected, whence a "rejected" webhook).
    assert tap.of_type("referral.rejected") == []
    # Answers go to the referrer's own reply key, and name the message they answer.
    assert {m.routing_key for m in tap.messages if (m.routing_key or "").startswith("reply.")} == {
        "reply.tests.submission.acknowledged",
        "reply.tests.submission.error",
    }


async def test_past_its_quota_a_referrer_is_held_and_its_quota_counted_exactly(
    settings: Settings,
) -> None:
    """40 submissions waiting at the door, 5 a day allowed: the first batch takes 32 of
    them, fails where the quota runs out, and is replayed one by one. Exactly 5 are
    acknowledged (a count rolled back with its batch does not make the quota spent); the
    other 35 are refused, the first recorded and the rest unread (the sender held,
    shared.door_guard), each answered; another referrer is not held."""
    s = settings.model_copy(update={"referrer_per_day": 5})
    await declare_topology(s.broker_url, s.namespace)
    async with Tap(s.broker_url, s.namespace, "reply.#") as tap:
        async with (
            EventPublisher(s.broker_url, s.namespace, "a", actor="referrer-gp-a") as a,
            EventPublisher(s.broker_url, s.namespace, "b", actor="referrer-gp-b") as b,
        ):
            own = Referrer(kind=ReferrerKind.GP, identifier="gp-a", reply_to="gp-a")
            for n in range(40):
                submission = referral(f"q-{n}").model_copy(update={"referrer": own})
                await a.publish(submission, correlation_id=str(n))
            other = Referrer(kind=ReferrerKind.GP, identifier="gp-b", reply_to="gp-b")
            await b.publish(
                referral("q-b").model_copy(update={"referrer": other}), correlation_id="b"
            )
        runtime = build(s)
        async with running(runtime):  # the door takes the 41 waiting messages
            await tap.wait_for(lambda es: len(es) >= 41)
            await asyncio.sleep(0.5)  # nothing more comes
            [door] = [c for c in runtime.consumers if c.spec.is_door]
            assert door.guard.holding("referrer-gp-a")
            assert not door.guard.holding("referrer-gp-b")
            async with runtime.database.transaction() as session:
                recorded = (await session.scalars(select(refusals.c.error_code))).all()
    answers = [
        (m.routing_key, e.data.get("error_code"))
        for m, e in zip(tap.messages, tap.envelopes, strict=True)
    ]
    assert answers.count(("reply.gp-a.submission.acknowledged", None)) == 5
    assert answers.count(("reply.gp-a.request.refused", "rate_limited")) == 35
    assert answers.count(("reply.gp-b.submission.acknowledged", None)) == 1
    assert len(answers) == 41
    assert recorded == ["rate_limited"]  # the first; the others refused unread
