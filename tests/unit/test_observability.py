"""Issue 35: log lines carry the trace they belong to; HTTP answers are counted by route
template (never by path: ids, a patient's personal link), probes and scrapes not at all."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared import tracing
from shared.logging import configure_logging, get_logger
from shared.metrics import HttpMetrics, ServiceMetrics
from tests.spans import traced


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with traced() as exporter:
        yield exporter


def test_a_log_line_inside_a_span_names_its_trace(spans: InMemorySpanExporter) -> None:
    configure_logging("test", json=True)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    log = get_logger("test")
    try:
        with tracing.span("unit", service="test", referral_id="r-1") as span:
            assert span is not None
            log.info("inside")
            expected = format(span.get_span_context().trace_id, "032x")
        log.info("outside")
    finally:
        logging.getLogger().handlers[0].setStream(sys.stderr)  # type: ignore[attr-defined]
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == expected and len(inside["span_id"]) == 16
    assert "trace_id" not in outside


def test_a_traceparent_stored_then_restored_makes_a_child(spans: InMemorySpanExporter) -> None:
    with tracing.span("parent", service="test") as parent:
        assert parent is not None
        stored = tracing.staged("r-2")
    assert stored is not None and stored.startswith("00-")
    assert tracing.parent_of({"traceparent": stored.encode()}) == stored
    assert tracing.parent_of({"traceparent": "x" * 200}) is None  # a sender's, bounded
    with tracing.span("child", service="test", parent=stored) as child:
        assert child is not None
        assert child.get_span_context().trace_id == parent.get_span_context().trace_id
        assert child.parent is not None  # type: ignore[attr-defined]
        assert child.parent.span_id == parent.get_span_context().span_id  # type: ignore[attr-defined]


async def test_http_answers_are_counted_by_route_template() -> None:
    metrics = ServiceMetrics("test")
    app = FastAPI()

    @app.get("/patient/{token}")
    async def patient(token: str) -> dict[str, str]:
        return {"ok": token[:1]}

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    app.add_middleware(HttpMetrics, metrics=metrics)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for token in ("p1.secret-one", "p1.secret-two"):
            assert (await client.get(f"/patient/{token}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/ready")).status_code == 200
    text = generate_latest(metrics.registry).decode()
    assert "secret" not in text
    counted = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "aiguillage_http_requests"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert counted == {("/patient/{token}", "2xx"): 2, ("unmatched", "4xx"): 1}
