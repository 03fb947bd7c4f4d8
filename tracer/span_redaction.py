"""The last redaction pass: a finished span's attributes, events and status, before export.

Payloads are redacted when they are captured; this pass covers what is written without going
through capture: exception events (message and stack trace, recorded by tracemill, the SDK or a
framework), status messages, attributes set by hand or by other instrumentation, and values under
sensitive attribute names. It builds a new read-only span only when something changed, so the
live span and the other processors of the provider see the original.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status
from opentelemetry.util.types import Attributes

from tracemill.tracer import semconv
from tracemill.tracer.redaction import Redactor

SCOPE_NAME = "tracemill"

CAPTURED_ATTRIBUTES = frozenset({
    semconv.INPUT, semconv.OUTPUT, semconv.INPUT_MESSAGES, semconv.OUTPUT_MESSAGES, semconv.SYSTEM_INSTRUCTIONS,
    semconv.TOOL_DEFINITIONS, semconv.TOOL_CALL_ARGUMENTS, semconv.TOOL_CALL_RESULT, semconv.DECISION_OPTIONS,
    semconv.DECISION_CHOICE, semconv.DECISION_REASON, semconv.TOOL_PARAMETERS,
})
"""Attributes tracemill's own spans fill through capture (already redacted, with the user's callback
applied): not scanned twice. Spans of other instrumentation are scanned whole. A tool's parameter
schema is captured when it comes from an LLM call's definitions; read from a signature it holds names
and types, never values (defaults are left out), and a free-text scan would break its JSON."""


def _redact_attributes(
    attributes: Attributes, redactor: Redactor, skip: frozenset[str],
) -> dict[str, Any] | None:
    """The attributes with secrets masked, or None when nothing changed."""
    if not attributes:
        return None
    changed: dict[str, Any] | None = None
    for key, value in attributes.items():
        if key in skip and not redactor.is_sensitive_key(key):
            continue
        redacted = redactor.redact_attribute(key, value)
        if redacted is not value and redacted != value:
            if changed is None:
                changed = dict(attributes)
            changed[key] = redacted
    return changed


def _skip_for(span: ReadableSpan) -> frozenset[str]:
    scope = span.instrumentation_scope
    return CAPTURED_ATTRIBUTES if scope is not None and scope.name == SCOPE_NAME else frozenset()


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """``span`` itself when it holds no secret, else a copy with every secret masked."""
    attributes = _redact_attributes(span.attributes, redactor, _skip_for(span))
    events = None
    for index, event in enumerate(span.events or ()):
        redacted = _redact_attributes(event.attributes, redactor, frozenset())
        if redacted is not None:
            if events is None:
                events = list(span.events)
            events[index] = Event(event.name, redacted, timestamp=event.timestamp, limit=None)
    status = span.status
    if status.description:
        description = redactor.redact_text(status.description)
        status = Status(status.status_code, description) if description != status.description else status
    if attributes is None and events is None and status is span.status:
        return span
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=attributes if attributes is not None else span.attributes,
        events=events if events is not None else span.events, links=span.links, kind=span.kind,
        status=status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
