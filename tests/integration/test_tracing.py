"""Issue 35: one referral is one trace, from intake's HTTP door to the webhook that tells
the GP of the appointment, across the four services on the real broker (in the test's
process, spans kept by the in-memory exporter).

The trace context crosses each service's outbox (stored with the row, put back in the
AMQP headers by the relay) and the notifier's notices table (sent after the commit)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.intake.app import build as build_intake
from services.notifier.app import build as build_notifier
from services.regulation.app import build as build_regulation
from services.scheduler.app import build as build_scheduler
from services.scheduler.store import active_schedules
from shared import tracing
from shared.auth import Role, issue_token
from shared.http import HttpServer
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from tests.helpers import centre, running
from tests.spans import traced
from tests.strategies import valid_referral

pytestmark = pytest.mark.integration


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    with traced() as exporter:
        yield exporter


class Hooks:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> dict[str, str]:
            self.received.append(json.loads(await request.body()))
            return {"status": "ok"}


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[Hooks, int]]:
    receiver = Hooks()
    server = HttpServer(receiver.app, "127.0.0.1", 0)
    await server.start()
    try:
        yield receiver, server.port
    finally:
        await server.stop()


async def _centre_active(settings: Settings, scheduler: Any) -> None:
    async with EventPublisher(settings.broker_url, settings.namespace, "t") as pub:
        await pub.publish(centre("rennes-t", "35238", boxes=2), correlation_id="c")
    for _ in range(200):
        async with scheduler.database.transaction() as session:
            if await active_schedules(session):
                return
        await asyncio.sleep(0.1)
    raise TimeoutError("the centre is not active")


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span and its ancestors, up to the trace's root."""
    chain = [span]
    while chain[-1].parent is not None:
        chain.append(by_id[chain[-1].parent.span_id])
    return chain


async def test_one_referral_is_one_trace_from_the_door_to_the_webhook(
    settings: Settings, hooks: tuple[Hooks, int], span_exporter: InMemorySpanExporter
) -> None:
    exporter = span_exporter
    receiver, port = hooks
    referral = valid_referral("trace-1")
    referral["referrer"]["webhook_url"] = f"http://127.0.0.1:{port}/hook"
    token = issue_token(settings, Role.REFERRER, "gp:10001234567", ServiceName.INTAKE)
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(running(build_intake(settings)))
        await stack.enter_async_context(running(build_regulation(settings)))
        scheduler = await stack.enter_async_context(running(build_scheduler(settings)))
        await stack.enter_async_context(running(build_notifier(settings)))
        await _centre_active(settings, scheduler)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=intake.http_app),
            base_url="http://intake",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            created = await http.post("/referrals", json=referral)
        assert created.status_code == 201, created.text
        referral_id = created.json()["referral_id"]
        deadline = time.monotonic() + 60
        while not any(
            h.get("referral_id") == referral_id and h.get("status") == "appointment"
            for h in receiver.received
        ):
            assert time.monotonic() < deadline, receiver.received
            await asyncio.sleep(0.1)
        # The send's span ends as the webhook's answer comes back: wait for it.
        while True:
            spans = list(exporter.get_finished_spans())
            sends = [
                s
                for s in spans
                if s.name == "notifier send webhook"
                and (s.attributes or {}).get(tracing.REFERRAL_ATTRIBUTE) == referral_id
            ]
            if sends:
                break
            assert time.monotonic() < deadline, [s.name for s in spans]
            await asyncio.sleep(0.1)
    by_id = {s.context.span_id: s for s in spans}
    # The appointment's webhook, up to the door: each span the child of the one before.
    chains = [_chain(send, by_id) for send in sends]
    chain = next(c for c in chains if c[1].name == "notifier.assignments process")
    names = [s.name for s in reversed(chain)]

    assert names == [
        "intake POST /referrals",
        "regulation.referrals process",
        "scheduler.referrals process",
        "notifier.assignments process",
        "notifier send webhook",
    ]
    assert {s.context.trace_id for s in chain} == {chain[0].context.trace_id}
    services = [(s.attributes or {}).get(tracing.SERVICE_ATTRIBUTE) for s in reversed(chain)]
    assert services == ["intake", "regulation", "scheduler", "notifier", "notifier"]
    # Every span of the trace is the referral's, and names it by its pseudonymous id only.
    trace_id = chain[0].context.trace_id
    of_trace = [s for s in spans if s.context.trace_id == trace_id]
    assert {(s.attributes or {}).get(tracing.REFERRAL_ATTRIBUTE) for s in of_trace} == {referral_id}
    text = json.dumps([dict(s.attributes or {}) for s in of_trace])
    assert "Martin" not in text and "0612345678" not in text
