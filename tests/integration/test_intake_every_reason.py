"""Every reason at once on intake's broker door too: a schema error does not stop the
rules that can still run, and ``submission.error`` lists them all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.intake.app import build
from shared.events import Envelope, ReferralSubmitted
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.helpers import Tap, running
from tests.strategies import valid_referral


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    runtime = build(settings)
    async with running(runtime):
        yield runtime


async def test_the_broker_door_answers_every_reason_at_once(
    settings: Settings, intake: ServiceRuntime
) -> None:
    s = settings
    bad = valid_referral("b-all")
    del bad["patient"]["last_name"]
    del bad["patient"]["commune_insee"]
    bad["patient"]["birth_date"] = "2999-01-01"
    bad["patient"]["postcode"] = "00000"
    bad["clinical"]["onset_date"] = "2999-01-02"
    envelope = Envelope(
        type=ReferralSubmitted.event_type, source="tests", correlation_id="b-all", data=bad
    )
    async with Tap(s.broker_url, s.namespace, "reply.#", "referral.rejected") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "tests") as door:
            await door.publish_envelope(envelope, ReferralSubmitted.event_type)
        await tap.wait_for(lambda es: any(e.type == "submission.error" for e in es))
        await tap.wait_for(lambda es: any(e.type == "referral.rejected" for e in es))
    [error] = tap.of_type("submission.error")
    expected = {
        ("patient.last_name", "missing_field"),
        ("patient.birth_date", "birth_date_in_future"),
        ("clinical.onset_date", "onset_in_future"),
        ("patient.commune_insee", "commune_unknown_postcode"),
    }
    assert error.data["source_message_id"] == envelope.id
    assert error.data["error_code"] == "invalid_referral"
    assert {(r["field"], r["code"]) for r in error.data["reasons"]} == expected
    assert all(field in error.data["cause"] for field, _ in expected)
    [rejected] = tap.of_type("referral.rejected")
    assert {(r["field"], r["code"]) for r in rejected.data["reasons"]} == expected
    replies = {m.routing_key for m in tap.messages if (m.routing_key or "").startswith("reply.")}
    assert replies == {"reply.prop.submission.error"}


async def test_the_broker_door_refuses_a_wrong_number_as_the_http_door_does(
    settings: Settings, intake: ServiceRuntime
) -> None:
    """The same reasons on both doors: a number that is none (``invalid_phone``), a
    landline with SMS consent (``sms_to_landline``), in French, beside the others."""
    s = settings
    wrong, landline = valid_referral("b-phone-1"), valid_referral("b-phone-2")
    wrong["patient"]["phone"] = "06 12 34"
    wrong["patient"]["birth_date"] = "2999-01-01"
    landline["patient"] |= {"phone": "01 23 45 67 89", "sms_consent": True}
    envelopes = [
        Envelope(type=ReferralSubmitted.event_type, source="tests", correlation_id=ref, data=data)
        for ref, data in (("b-phone-1", wrong), ("b-phone-2", landline))
    ]
    async with Tap(s.broker_url, s.namespace, "reply.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "tests") as door:
            for envelope in envelopes:
                await door.publish_envelope(envelope, ReferralSubmitted.event_type)
        await tap.wait_for(lambda es: len([e for e in es if e.type == "submission.error"]) == 2)
    errors = {e.data["source_message_id"]: e.data for e in tap.of_type("submission.error")}
    first, second = (errors[envelope.id] for envelope in envelopes)
    assert {(r["field"], r["code"]) for r in first["reasons"]} == {
        ("patient.phone", "invalid_phone"),
        ("patient.birth_date", "birth_date_in_future"),
    }
    [invalid] = [r for r in first["reasons"] if r["code"] == "invalid_phone"]
    assert invalid["message"].startswith("Numéro de téléphone invalide : un numéro français")
    assert [(r["field"], r["code"]) for r in second["reasons"]] == [
        ("patient.phone", "sms_to_landline")
    ]
    assert "n'est pas un mobile" in second["reasons"][0]["message"]
