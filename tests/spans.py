"""The test process's spans (issue 35): OpenTelemetry takes one tracer provider per
process, so every test that traces shares this one, its spans kept in memory, and only
while it traces (``traced``): the tests after it trace nothing and keep no span."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@contextmanager
def traced() -> Iterator[InMemorySpanExporter]:
    """Trace inside the block; the exporter that holds its finished spans."""
    if trace.get_tracer_provider() is _PROVIDER:
        tracing.pause(False)
    else:
        tracing.install(_PROVIDER)
    _EXPORTER.clear()
    try:
        yield _EXPORTER
    finally:
        tracing.pause()
        _EXPORTER.clear()
