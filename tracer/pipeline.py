"""The span processor and sampler tracemill installs once, whose contents ``init()`` replaces.

OpenTelemetry lets a process set its global tracer provider once, and a provider's tracers keep
the processors and sampler they were built with. So tracemill attaches one delegating processor
and one delegating sampler and swaps what they delegate to: a second ``init()`` (a notebook cell
run again, a test) changes the export pipeline without leaving the global provider shut down or
piling processors onto a provider the program owns.

Every finished span passes a last redaction pass (:mod:`tracemill.tracer.span_redaction`) on its
way to the current processor, so no exporter of tracemill's pipeline sees an unmasked secret.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from tracemill.tracer.logs import log_once
from tracemill.tracer.openinference import with_openinference
from tracemill.tracer.redaction import Redactor
from tracemill.tracer.span_redaction import redact_span


class SwitchableProcessor(SpanProcessor):
    """Delegates to the processor of the current ``init()``, or to nothing."""

    def __init__(self) -> None:
        self._inner: SpanProcessor | None = None
        self._lock = threading.Lock()
        self.redactor = Redactor()
        self.openinference = False

    def swap(self, processor: SpanProcessor | None) -> SpanProcessor | None:
        """Install ``processor``; return the previous one (the caller shuts it down)."""
        with self._lock:
            previous, self._inner = self._inner, processor
        return previous

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        inner = self._inner
        if inner is not None:
            inner.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        # Private SDK hook (opentelemetry-sdk >= 1.30, < 2; see tests/tracer/test_otel_private_api.py): the
        # SDK calls it with the live span before on_end; forwarded so a wrapped processor that uses it works.
        inner = self._inner
        if inner is not None:
            inner._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        inner = self._inner
        if inner is None:
            return
        try:
            span = redact_span(span, self.redactor)
        except Exception:  # an unredacted span must not leave: drop it, say so once
            log_once("redact_span", "tracemill: a span could not be redacted and was not exported")
            return
        if self.openinference:
            try:
                span = with_openinference(span)
            except Exception:
                log_once("openinference", "tracemill: could not add OpenInference attributes to a span")
        inner.on_end(span)

    def shutdown(self) -> None:
        previous = self.swap(None)
        if previous is not None:
            previous.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        inner = self._inner
        return inner.force_flush(timeout_millis) if inner is not None else True


class SwitchableSampler(Sampler):
    """Delegates to the sampler of the current ``init()`` (parent-based ratio sampling)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        return self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"tracemill({self.inner.get_description()})"
