"""Spans around generators and async generators that end on every exit path.

The span's context is attached only while the wrapped generator runs (each ``send``/``throw``
step) and detached before a value is handed to the consumer, so no context is left attached
across a ``yield``. That is what lets a consumer ``break``, ``close()`` the stream from
another task, or drop it for the garbage collector without "Failed to detach context" errors:
whichever way the consumer leaves, the ``finally`` below ends the span exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from tracemill.tracer.logs import log_once
from tracemill.tracer.spans import end_span, record_error

MAX_CAPTURED_ITEMS = 100
"""Yielded items kept for the span's output; later items are counted, not kept."""

OpenSpan = Callable[[], Span | None]
CloseSpan = Callable[[Span, "list[Any] | None", int, bool], None]
"""Called before the span ends with (span, a sample of the items or None on failure, item count, closed early)."""


class _Items:
    __slots__ = ("count", "kept")

    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.count = 0

    def add(self, item: Any) -> None:
        self.count += 1
        if len(self.kept) < MAX_CAPTURED_ITEMS:
            self.kept.append(item)

    def summary(self) -> list[Any]:
        if self.count > len(self.kept):
            return [*self.kept, f"…[{self.count - len(self.kept)} more items]"]
        return self.kept


def _finish(span: Span, close: CloseSpan, items: _Items | None, closed_early: bool) -> None:
    try:
        close(span, None if items is None else items.summary(), 0 if items is None else items.count, closed_early)
    except Exception:
        log_once("generator.output", "tracemill: could not record a generator's output")
    end_span(span)


def traced_generator(
    inner: Generator[Any, Any, Any], open_span: OpenSpan, close: CloseSpan
) -> Generator[Any, Any, Any]:
    span = open_span()
    ctx = trace.set_span_in_context(span) if span is not None else otel_context.get_current()
    items = _Items()
    send_value: Any = None
    pending_exc: BaseException | None = None
    outcome: _Items | None = items
    closed_early = False
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                if pending_exc is not None:
                    exc, pending_exc = pending_exc, None
                    item = inner.throw(exc)
                else:
                    item = inner.send(send_value)
            except StopIteration as stop:
                return stop.value
            finally:
                otel_context.detach(token)
            items.add(item)
            try:
                send_value = yield item
            except GeneratorExit:
                closed_early = True
                token = otel_context.attach(ctx)
                try:
                    inner.close()
                finally:
                    otel_context.detach(token)
                raise
            except BaseException as exc:  # consumer's throw(): hand it to the inner generator
                pending_exc = exc
                send_value = None
    except GeneratorExit:
        raise
    except BaseException as exc:
        outcome = None
        if span is not None:
            record_error(span, exc)
        raise
    finally:
        if span is not None:
            _finish(span, close, outcome, closed_early)


async def traced_async_generator(
    inner: AsyncGenerator[Any, Any], open_span: OpenSpan, close: CloseSpan
) -> AsyncGenerator[Any, Any]:
    span = open_span()
    ctx = trace.set_span_in_context(span) if span is not None else otel_context.get_current()
    items = _Items()
    send_value: Any = None
    pending_exc: BaseException | None = None
    outcome: _Items | None = items
    closed_early = False
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                if pending_exc is not None:
                    exc, pending_exc = pending_exc, None
                    item = await inner.athrow(exc)
                else:
                    item = await inner.asend(send_value)
            except StopAsyncIteration:
                return
            finally:
                otel_context.detach(token)
            items.add(item)
            try:
                send_value = yield item
            except GeneratorExit:
                closed_early = True
                token = otel_context.attach(ctx)
                try:
                    await inner.aclose()
                finally:
                    otel_context.detach(token)
                raise
            except BaseException as exc:
                pending_exc = exc
                send_value = None
    except GeneratorExit:
        raise
    except BaseException as exc:
        outcome = None
        if span is not None:
            record_error(span, exc)
        raise
    finally:
        if span is not None:
            _finish(span, close, outcome, closed_early)

