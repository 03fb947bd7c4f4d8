"""The two private OpenTelemetry names tracemill relies on, held to what it needs from them.

- ``SpanProcessor._on_ending`` (opentelemetry-sdk): :class:`~tracemill.tracer.pipeline.SwitchableProcessor`
  forwards it to the processor it wraps.
- ``opentelemetry.context._SUPPRESS_INSTRUMENTATION_KEY`` (opentelemetry-api): the store exporter sets it
  so that the store's own I/O is not traced.

pyproject.toml allows ``opentelemetry-sdk>=1.30,<2``; when a release changes either name, these tests fail
before users do.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from tracemill.tracer.pipeline import SwitchableProcessor


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


class Recording(SpanProcessor):
    def __init__(self) -> None:
        self.calls: list[tuple[str, object, bool]] = []

    def _on_ending(self, span: Span) -> None:
        self.calls.append(("_on_ending", span, span.end_time is not None))

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(("on_end", span, True))


def test_installed_sdk_is_in_the_range_tracemill_declares():
    installed = _version(importlib.metadata.version("opentelemetry-sdk"))
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    requirement = re.search(r'"(opentelemetry-sdk[^"]*)"', pyproject).group(1)
    lower, upper = (_version(v) for v in re.findall(r"[<>]=?\s*([\d.]+)", requirement))
    assert lower <= installed < upper, f"opentelemetry-sdk {installed} is outside {requirement!r}"


def test_sdk_calls_on_ending_with_the_live_span_before_on_end_and_the_pipeline_forwards_it():
    recording = Recording()
    pipeline = SwitchableProcessor()
    pipeline.swap(recording)
    provider = TracerProvider()
    provider.add_span_processor(pipeline)
    span = provider.get_tracer("t").start_span("s")
    span.end()
    assert [name for name, _, _ in recording.calls] == ["_on_ending", "on_end"]
    _, live, ended = recording.calls[0]
    assert live is span and isinstance(live, Span) and ended
    provider.shutdown()


def test_suppress_instrumentation_key_is_the_one_the_sdk_sets_around_its_exports():
    seen: list[object] = []

    class Probe(SpanExporter):
        def export(self, spans):
            seen.append(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Probe()))
    provider.get_tracer("t").start_span("s").end()
    assert seen == [True]
    assert otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None
    provider.shutdown()
