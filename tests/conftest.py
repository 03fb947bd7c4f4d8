"""Fixtures shared by every test package.

``spans`` gives a tracing pipeline that exports synchronously into the OTel SDK's own
in-memory exporter, so a test can read back exactly the spans a call produced.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill
from tracemill.tracer.causality import TOOL_CALLS
from tracemill.tracer.logs import reset_log_once


class SpanRecorder:
    """The finished spans of one test, with lookups by name."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    @property
    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        matches = [s for s in self.finished if s.name == name]
        assert len(matches) == 1, f"expected one span named {name!r}, got {[s.name for s in self.finished]}"
        return matches[0]

    def names(self) -> list[str]:
        return [s.name for s in self.finished]

    def clear(self) -> None:
        self.exporter.clear()

    def reinit(self, **settings) -> None:
        """Re-initialize tracing with ``settings`` (a fresh exporter: shutdown stops the old one)."""
        self.exporter = InMemorySpanExporter()
        tracemill.init(processor=SimpleSpanProcessor(self.exporter), service_name="tracemill-tests", env={},
                       **settings)


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(exporter), service_name="tracemill-tests", env={})
    try:
        yield SpanRecorder(exporter)
    finally:
        tracemill.shutdown()
        TOOL_CALLS.clear()
        reset_log_once()
