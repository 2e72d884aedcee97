"""Intake's broker door: de-duplication, conflicts, answers that name their message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.intake.app import build
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import Settings
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
    assert {m.routing_key for m in tap.messages if m.routing_key.startswith("reply.")} == {
        "reply.tests.submission.acknowledged",
        "reply.tests.submission.error",
    }
