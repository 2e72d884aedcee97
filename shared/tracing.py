"""One trace per referral, across the doors and the four services (OpenTelemetry).

Off unless configured: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the OpenTelemetry SDK's own
variable, read by its OTLP exporter) or ``AIGUILLAGE_TRACING=true`` (the exporter's
defaults, a collector on localhost:4318). Off, every function here returns at its first
line: no span, no header, no column written.

The context crosses the broker as W3C ``traceparent`` in the AMQP headers. Events leave
through the transactional outbox, so a handler's ``traceparent`` is stored with the
outbox row it stages (``shared.outbox``) and put back in the headers when the relay
publishes it: the next service's span is the child of the span that caused the event,
however long the row waited. Spans carry the referral's pseudonymous id (the envelope's
``correlation_id``, a random UUID) as ``aiguillage.referral_id``; never an identity.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

TRACEPARENT = "traceparent"
REFERRAL_ATTRIBUTE = "aiguillage.referral_id"
SERVICE_ATTRIBUTE = "aiguillage.service"

# FastAPI's own telemetry (0.16x) is off: its spans carry the request's path and query
# (a patient's personal link is a path), its logs the validation errors' text. The
# services' HTTP spans are ``HttpSpans``'s, named by route template.
NO_FASTAPI_TELEMETRY: dict[str, Any] = (
    {
        "telemetry": {
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
        }
    }
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("aiguillage")
_enabled = False


def enabled() -> bool:
    return _enabled


def wanted(tracing_setting: bool) -> bool:
    """Whether this process traces: the setting, or an OTLP endpoint in the environment."""
    return tracing_setting or bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(service: str, tracing_setting: bool) -> None:
    """Send this process's spans to the OTLP collector, if tracing is wanted (once per
    process: OpenTelemetry has one tracer provider per process)."""
    if _enabled or not wanted(tracing_setting):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"aiguillage-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)


def install(provider: TracerProvider) -> None:
    """Trace with ``provider`` (tests give one with an in-memory exporter)."""
    global _enabled
    trace.set_tracer_provider(provider)
    _enabled = True


def pause(paused: bool = True) -> None:
    """Stop tracing (or start again) with the provider installed: tests trace for a while
    in a process that goes on with other tests."""
    global _enabled
    _enabled = not paused and isinstance(trace.get_tracer_provider(), TracerProvider)


def traceparent() -> str | None:
    """The current span's ``traceparent``, to store with an outbox row (None: off)."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def staged(referral_id: str) -> str | None:
    """An event of ``referral_id`` staged under the current span: the span is tagged with
    the referral (a door's span learns it here), and its ``traceparent`` returned for the
    outbox row (None: off)."""
    if not _enabled:
        return None
    tag_referral(trace.get_current_span(), referral_id)
    return traceparent()


def carried(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with the current ``traceparent`` (a row sent later, outside this span:
    the notifier's notices), unchanged when tracing is off."""
    parent = traceparent()
    return record if parent is None else {**record, TRACEPARENT: parent}


def headers(parent: str | None) -> dict[str, Any] | None:
    """The AMQP headers that carry ``parent`` (None when there is none)."""
    return None if parent is None else {TRACEPARENT: parent}


def _parent_context(parent: str | None) -> otel_context.Context | None:
    if not parent:
        return None
    return _propagator.extract({TRACEPARENT: parent})


@contextmanager
def span(
    name: str,
    *,
    service: str,
    parent: str | None = None,
    referral_id: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span | None]:
    """A span, current inside the block, child of ``parent`` (a ``traceparent``) when
    given, else of the current span. Yields None when tracing is off."""
    if not _enabled:
        yield None
        return
    attributes: dict[str, str] = {SERVICE_ATTRIBUTE: service}
    if referral_id:
        attributes[REFERRAL_ATTRIBUTE] = referral_id
    with _tracer.start_as_current_span(
        name, context=_parent_context(parent), kind=kind, attributes=attributes
    ) as current:
        yield current


def parent_of(message_headers: Mapping[str, Any] | None) -> str | None:
    """The ``traceparent`` an AMQP message came with (bounded: a sender chose it)."""
    if not _enabled or not message_headers:
        return None
    value = message_headers.get(TRACEPARENT)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value if isinstance(value, str) and len(value) <= 55 else None


def tag_referral(current: Span | None, referral_id: str | None) -> None:
    if current is not None and referral_id and current.is_recording():
        current.set_attribute(REFERRAL_ATTRIBUTE, referral_id)


@contextmanager
def within(current: Span | None) -> Iterator[None]:
    """Make ``current`` the current span in this task (the committer task runs many
    deliveries' handlers: each under its own delivery's span)."""
    if current is None:
        yield
        return
    with trace.use_span(current, end_on_exit=False):
        yield


_UNTRACED = frozenset({"/health", "/ready", "/metrics"})


class HttpSpans:
    """ASGI middleware: a server span per HTTP request (a door's span, the root of the
    referral's trace unless the caller sent a ``traceparent``), named by its route's
    template, never by its path (ids). Probes and scrapes are not traced."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _enabled or scope["type"] != "http" or scope.get("path") in _UNTRACED:
            await self.app(scope, receive, send)
            return
        parent = None
        for name, value in scope.get("headers") or ():
            if name == b"traceparent" and len(value) <= 55:
                parent = value.decode("ascii", "replace")
        method = scope.get("method", "GET")
        with span(
            f"{self.service} {method}", service=self.service, parent=parent, kind=SpanKind.SERVER
        ) as current:
            await self.app(scope, receive, send)
            route = scope.get("route")
            if current is not None and route is not None:
                current.update_name(f"{self.service} {method} {getattr(route, 'path', '')}")


def add_trace_ids(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current trace and span ids on every log line."""
    if not _enabled:
        return event_dict
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict
