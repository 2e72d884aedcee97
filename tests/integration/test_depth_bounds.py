"""Every input is bounded in depth (issue 28: ``[`` × 5,000 made intake answer 500 with a
traceback, the try counted against the quota, and looped on the Hub Santé door).

Over HTTP, every service's ``BodyLimit`` refuses a body nested over 32 levels with 400
``too_deep`` before routing and authentication: no parser sees it, no quota counts it.
On the broker, the consumer judges the raw bytes first: a door refuses the message to
its sender once (``request.refused``, recorded), any other queue dead-letters it once;
nothing is retried or requeued, and the queue flows on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import select

from services.intake.app import build as build_intake
from services.notifier.app import build as build_notifier
from services.regulation.app import build as build_regulation
from services.scheduler.app import build as build_scheduler
from shared.auth import Role, issue_token
from shared.messaging_tables import refusals
from shared.migrations import upgrade
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from tests.helpers import Tap, dead_letters, referral, running

DEEP = b"[" * 5000
# An envelope whose data nests too deep: a parser would take it for an event.
DEEP_ENVELOPE = (
    b'{"id": "e", "type": "referral.submitted", "data": {"patient": '
    + b"[" * 100
    + b"]" * 100
    + b"}}"
)
BUILDERS: dict[ServiceName, Callable[[Settings], ServiceRuntime]] = {
    ServiceName.INTAKE: build_intake,
    ServiceName.REGULATION: build_regulation,
    ServiceName.SCHEDULER: build_scheduler,
    ServiceName.NOTIFIER: build_notifier,
}
BODY_ROUTES = {
    ServiceName.INTAKE: "/referrals",
    ServiceName.REGULATION: "/referrals/r-1/decision",
    ServiceName.SCHEDULER: "/centres",
    ServiceName.NOTIFIER: "/centres/c-1/appointments/a-1/outcome",
}


def _client(runtime: ServiceRuntime, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runtime.http_app),
        base_url="http://service",
        headers=headers,
    )


@pytest.mark.parametrize("service", list(ServiceName))
async def test_every_service_refuses_a_deep_body_before_routing_and_authentication(
    settings: Settings, service: ServiceName
) -> None:
    runtime = BUILDERS[service](settings)
    async with _client(runtime) as http:  # no token: the 400 comes first
        for body in (DEEP, DEEP_ENVELOPE, ("[" * 40 + "]" * 40).encode("utf-16")):
            response = await http.post(BODY_ROUTES[service], content=body)
            assert response.status_code == 400, response.text
            answer = response.json()
            assert answer["error_code"] == "too_deep"
            assert "32 niveaux" in answer["reasons"][0]["message"]  # said in French
            assert response.headers["cache-control"] == "no-store"
        # Streamed (no Content-Length): judged once whole.
        chunks = [DEEP[i : i + 1000] for i in range(0, len(DEEP), 1000)]

        async def streamed() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        response = await http.post(BODY_ROUTES[service], content=streamed())
        assert response.status_code == 400
        # A shallow body goes on to authentication, as before.
        assert (await http.post(BODY_ROUTES[service], json={"a": 1})).status_code == 401


async def test_a_deep_body_is_not_counted_against_the_referrer_s_quota(
    settings: Settings,
) -> None:
    """Two submissions a minute: five deep bodies first, then two valid ones still pass
    (a counted try would have spent the quota), the third is 429."""
    runtime = build_intake(settings.model_copy(update={"referrer_per_minute": 2}))
    await upgrade(runtime.database, "services.intake:migrations")
    token = issue_token(settings, Role.REFERRER, "gp:10001234567", ServiceName.INTAKE)
    try:
        async with _client(runtime, token) as http:
            for _ in range(5):
                response = await http.post("/referrals", content=DEEP)
                assert response.status_code == 400, response.text
            for n in range(2):
                valid = referral(f"deep-{n}").model_dump(mode="json")
                assert (await http.post("/referrals", json=valid)).status_code == 201
            third = referral("deep-3").model_dump(mode="json")
            assert (await http.post("/referrals", json=third)).status_code == 429
    finally:
        await runtime.database.dispose()


async def test_a_deep_message_on_the_door_is_refused_once_and_never_requeued(
    settings: Settings,
) -> None:
    runtime = build_intake(settings)
    s = settings
    async with (
        running(runtime),
        Tap(s.broker_url, s.namespace, "reply.#") as tap,
        EventPublisher(s.broker_url, s.namespace, "gp", actor="referrer-10001234567") as gp,
    ):
        sent = [str(uuid.uuid4()) for _ in range(2)]
        for message_id, body in zip(sent, (DEEP, DEEP_ENVELOPE), strict=True):
            await gp.publish_raw(body, "referral.submitted", message_id=message_id)
        await tap.wait_for(lambda es: len(es) >= 2)
        valid = await gp.publish(referral("after-deep", reply_to=None), correlation_id="c")
        await tap.wait_for(lambda es: any(e.type == "submission.acknowledged" for e in es))
        await asyncio.sleep(1.0)  # a requeue loop would answer again meanwhile
        refused = tap.of_type("request.refused")
        assert sorted(e.data["source_message_id"] for e in refused) == sorted(sent)
        assert {e.data["error_code"] for e in refused} == {"too_deep"}
        [ack] = tap.of_type("submission.acknowledged")
        assert ack.data["source_message_id"] == valid.id
        async with runtime.database.transaction() as session:
            codes = (await session.scalars(select(refusals.c.error_code))).all()
        assert codes == ["too_deep", "too_deep"]  # recorded once each


async def test_a_deep_message_on_another_queue_is_dead_lettered_once(settings: Settings) -> None:
    runtime = build_intake(settings)
    s = settings
    async with running(runtime), EventPublisher(s.broker_url, s.namespace, "scheduler") as bus:
        message_id = str(uuid.uuid4())
        await bus.publish_raw(DEEP, "slot.assigned.c-1", message_id=message_id, exchange="events")
        [letter] = await dead_letters(s.broker_url, s.namespace, "intake", expected=1)
        assert letter.message_id == message_id
        assert letter.headers["x-error-code"] == "too_deep"
        assert letter.headers["x-attempts"] == 1
        assert letter.body == DEEP  # kept as it came, to be looked at
        await asyncio.sleep(1.0)
        assert await dead_letters(s.broker_url, s.namespace, "intake", 1, timeout=1) == []
