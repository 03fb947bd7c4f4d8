"""Shared span mechanics: capture of payloads, error recording, run-scoped attributes.

Every tracemill span (decorators, manual API, integrations) starts and ends through these
helpers, so capture, redaction, budgets and error conventions are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from tracemill.tracer import semconv
from tracemill.tracer.capture import encode_json, fit_json, fit_text
from tracemill.tracer.logs import log_once
from tracemill.tracer.runtime import RUNTIME, ensure_initialized

RUN_ATTRIBUTES_KEY = otel_context.create_key("tracemill.run_attributes")
"""Context key holding the attributes of the enclosing ``tracemill.run`` that every span repeats."""


def active_tracer() -> trace.Tracer | None:
    """The tracer to use now, initializing from the environment on first use; None when disabled."""
    rt = RUNTIME
    tracer = rt.tracer
    if tracer is None and not rt.disabled:
        tracer = ensure_initialized()
    return tracer


def capture_enabled() -> bool:
    return RUNTIME.settings.capture_content


def capture(attribute: str, value: Any) -> str:
    """JSON text of ``value`` for ``attribute``: user callback, encoding, redaction, byte budget."""
    rt = RUNTIME
    redactor = rt.redactor
    if redactor.callback is not None:
        value = redactor.apply_callback(attribute, value)
    return fit_json(redactor.redact_json(encode_json(value)), rt.settings.max_payload_bytes)


def capture_text(value: str) -> str:
    """A plain-text payload (not JSON): secrets masked, cut to the byte budget with a marker."""
    rt = RUNTIME
    return fit_text(rt.redactor.redact_text(str(value)), rt.settings.max_payload_bytes)


def error_type(exc: BaseException) -> str:
    """The exception's class name, qualified by its module unless it is a builtin (semconv error.type)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def record_error(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc``: exception event, status Error, ``error.type``. Never raises."""
    try:
        span.record_exception(exc, escaped=True)
        span.set_attribute(semconv.ERROR_TYPE, error_type(exc))
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    except Exception:
        log_once("record_error", "tracemill: could not record an exception on a span")


def end_span(span: Span, exc: BaseException | None = None) -> None:
    """End ``span``, recording ``exc`` first if given. Never raises."""
    if exc is not None:
        record_error(span, exc)
    try:
        span.end()
    except Exception:
        log_once("span.end", "tracemill: a span failed to end")


def run_attributes() -> Mapping[str, Any] | None:
    return cast("Mapping[str, Any] | None", otel_context.get_value(RUN_ATTRIBUTES_KEY))


def start_span(
    tracer: trace.Tracer,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any],
    links: Sequence[Link] | None = None,
    parent: otel_context.Context | None = None,
) -> Span:
    """Start a span carrying the enclosing run's attributes (task, conversation) as well as its own."""
    inherited = cast("Mapping[str, Any] | None", otel_context.get_value(RUN_ATTRIBUTES_KEY, parent))
    if inherited:
        attributes = {**inherited, **attributes}
    return tracer.start_span(name, context=parent, kind=kind, attributes=attributes, links=links)


def set_attributes(**attributes: Any) -> None:
    """Add attributes to the current span (None values are skipped). Never raises."""
    try:
        span = trace.get_current_span()
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)
    except Exception:
        log_once("set_attributes", "tracemill: could not set attributes on the current span")


def set_decision(*, choice: Any, options: Sequence[Any] | None = None, reason: str | None = None) -> None:
    """Record a decision made in code on the current span: the options, the choice and why.

    Use it inside a ``@tracemill.step(decision=True)`` when the return value is not the choice
    itself (e.g. a router that returns the branch's result). With content capture off only the
    step kind is recorded. Never raises.
    """
    try:
        span = trace.get_current_span()
        span.set_attribute(semconv.DECISION, True)
        if semconv.STEP_KIND not in (getattr(span, "attributes", None) or {}):
            span.set_attribute(semconv.STEP_KIND, "decision")
        if not capture_enabled():
            return
        span.set_attribute(semconv.DECISION_CHOICE, capture(semconv.DECISION_CHOICE, choice))
        if options is not None:
            span.set_attribute(semconv.DECISION_OPTIONS, capture(semconv.DECISION_OPTIONS, list(options)))
        if reason is not None:
            span.set_attribute(semconv.DECISION_REASON, capture_text(reason))
    except Exception:
        log_once("set_decision", "tracemill: could not record a decision on the current span")
