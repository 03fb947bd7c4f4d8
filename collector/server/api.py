"""The JSON edge of the store's read layer: what ``/api/…`` answers and what the CLI prints with ``--json``.

Plain functions of a :class:`~tracemill.collector.store.store.Store` returning JSON-ready dicts (ISO
times, a span tree), so ``tracemill traces`` gives the same answer whether it runs them itself or
asks a server. The reads themselves are :mod:`tracemill.collector.store.reads` (typed records) and
:mod:`tracemill.collector.store.bulk` (column-oriented, for the miner and trainer); code that computes
with traces should use those, not these shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracemill.collector.ingest.deadletter import dead_letter_summary
from tracemill.collector.store.query import iso, parse_since
from tracemill.collector.store.reads import (
    MAX_TRACE_SPANS,
    resolve_trace_id,
    store_summary,
    trace_spans,
    trace_summaries,
)
from tracemill.collector.store.records import SpanRecord, TraceSummary
from tracemill.errors import TraceNotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = [
    "MAX_TRACE_SPANS",
    "TraceNotFoundError",
    "get_trace",
    "list_traces",
    "parse_since",
    "resolve_trace_id",
    "span_json",
    "store_status",
    "summary_json",
]


def store_status(store: Store) -> dict[str, Any]:
    """What the store holds: span, trace and error counts, time range, services, schema version."""
    s = store_summary(store)
    return {
        "location": s.location,
        "database": s.database,
        "embedded": s.embedded,
        "schema_version": s.schema_version,
        "spans": s.spans,
        "traces": s.traces,
        "error_spans": s.error_spans,
        "first_span_at": iso(s.first_ns) if s.first_ns is not None else None,
        "last_span_at": iso(s.last_ns) if s.last_ns is not None else None,
        "services": [{"name": name, "spans": n} for name, n in s.services],
        "dead_letters": dead_letter_summary(store),
    }


def list_traces(
    store: Store,
    *,
    limit: int = 20,
    offset: int = 0,
    service: str | None = None,
    search: str | None = None,
    errors_only: bool = False,
    since: str | float | None = None,
    until: str | float | None = None,
    attributes: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One page of traces, newest first, each summarized over all its spans.

    A trace is listed when any of its spans matches every filter: ``service`` (exact
    ``service.name``), ``search`` (case-insensitive text in a span name, an attribute value, a
    status message, or a trace id prefix), ``errors_only``, ``attributes`` (key = value, or an
    element of a list value), ``since``/``until`` (see :func:`parse_since`).
    """
    found = trace_summaries(
        store, limit=limit, offset=offset, service=service, search=search, errors_only=errors_only,
        since=since, until=until, attributes=attributes,
    )  # fmt: skip
    return [summary_json(summary) for summary in found]


def summary_json(s: TraceSummary) -> dict[str, Any]:
    """A trace summary as the API shows it."""
    return {
        "trace_id": s.trace_id,
        "name": s.name,
        "service": s.service,
        "agent": ", ".join(s.agents),
        "agents": list(s.agents),
        "task": s.task,
        "root_missing": s.root_missing,
        "start": iso(s.start_ns),
        "start_ns": s.start_ns,
        "duration_ms": round(s.duration_ns / 1e6, 3),
        "spans": s.spans,
        "errors": s.errors,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
    }


def get_trace(store: Store, trace_id: str, *, max_spans: int = MAX_TRACE_SPANS) -> dict[str, Any]:
    """One trace as a tree of spans (children ordered by start), with every stored field of each span.

    Spans whose parent is missing become roots marked ``parent_missing``, so a partly received trace
    still shows all it has and says what is lost. Raises :class:`TraceNotFoundError`.
    """
    full_id, records, truncated = trace_spans(store, trace_id, max_spans=max_spans)
    spans = [span_json(record) for record in records]
    start_ns = min(s["start_ns"] for s in spans)
    end_ns = max(s["start_ns"] + s["duration_ns"] for s in spans)
    roots = _tree(spans)
    return {
        "trace_id": full_id,
        "start": iso(start_ns),
        "start_ns": start_ns,
        "duration_ms": round((end_ns - start_ns) / 1e6, 3),
        "span_count": len(spans),
        "error_count": sum(1 for s in spans if s["error"]),
        "services": sorted({s["service"] for s in spans}),
        "truncated": truncated,
        "roots": roots,
        "missing_parents": sum(1 for root in roots if root["parent_missing"]),
    }


def span_json(span: SpanRecord) -> dict[str, Any]:
    """A span as the API shows it, with an empty ``children`` list for the tree."""
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": span.kind,
        "service": span.service,
        "start": iso(span.start_ns),
        "start_ns": span.start_ns,
        "duration_ns": span.duration_ns,
        "status_code": span.status_code,
        "status_message": span.status_message,
        "error": span.error,
        "attributes": dict(span.attributes),
        "resource_attributes": dict(span.resource_attributes),
        "scope": {"name": span.scope_name, "version": span.scope_version},
        "events": [
            {"time": iso(e.time_ns), "time_ns": e.time_ns, "name": e.name, "attributes": dict(e.attributes)}
            for e in span.events
        ],
        "links": [
            {"trace_id": link.trace_id, "span_id": link.span_id, "trace_state": link.trace_state,
             "attributes": dict(link.attributes)}
            for link in span.links
        ],
        "children": [],
    }


def _tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {s["span_id"]: s for s in spans}
    roots = []
    for span in spans:  # already in start order, so children lists come out ordered too
        parent = by_id.get(span["parent_span_id"]) if span["parent_span_id"] else None
        span["parent_missing"] = bool(span["parent_span_id"]) and parent is None
        if parent is None or parent is span:
            roots.append(span)
        else:
            parent["children"].append(span)
    return roots
