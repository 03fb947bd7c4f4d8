"""The columns of a span row: the OpenTelemetry Collector ClickHouse exporter's INSERT column list.

The store inserts span rows in this order (:meth:`~tracemill.collector.store.store.Store.insert_spans`) and the
ingest path builds them in it (:mod:`tracemill.collector.ingest.rows`).
"""

from __future__ import annotations

__all__ = ["SPAN_COLUMNS"]

SPAN_COLUMNS: tuple[str, ...] = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)
"""The exporter's INSERT column list; Nested columns are written as their flattened arrays."""
