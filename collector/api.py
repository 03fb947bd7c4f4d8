"""Read queries over the store that the CLI and the HTTP API share: status, trace lists, one trace as a tree.

Plain functions of a :class:`~tracemill.collector.store.Store` returning JSON-ready dicts, so
``tracemill traces`` gives the same answer whether it runs them itself or asks a server.
Aggregation happens in ClickHouse; only one page of traces, or one trace, comes back to Python.
Both status spellings (``Error`` and the older exporter's ``STATUS_CODE_ERROR``) count as errors.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.deadletter import dead_letter_summary
from tracemill.collector.schema import SCHEMA_TABLE, SPANS_TABLE, TRACE_ID_TS_TABLE
from tracemill.errors import ConfigError, TraceNotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store import Store

__all__ = [
    "MAX_TRACE_SPANS",
    "TraceNotFoundError",
    "get_trace",
    "list_traces",
    "parse_since",
    "resolve_trace_id",
    "store_status",
]

MAX_TRACE_SPANS = 10_000
"""At most this many spans of one trace are returned (the tree says when it was cut)."""

_ERROR = "StatusCode IN ('Error', 'STATUS_CODE_ERROR')"
_HEX = re.compile(r"^[0-9a-f]+$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def store_status(store: Store) -> dict[str, Any]:
    """What the store holds: span, trace and error counts, time range, services, schema version."""
    row = store.query(
        f"SELECT count(), uniq(TraceId), countIf({_ERROR}), "
        "toUnixTimestamp64Nano(min(Timestamp)), toUnixTimestamp64Nano(max(Timestamp)) "
        f"FROM {SPANS_TABLE}"
    ).result_rows[0]
    spans, traces, errors, first_ns, last_ns = row
    services = store.query(
        f"SELECT ServiceName, count() AS n FROM {SPANS_TABLE} GROUP BY ServiceName ORDER BY n DESC LIMIT 20"
    ).result_rows
    version = store.query(f"SELECT max(Version) FROM {SCHEMA_TABLE}").result_rows[0][0]
    return {
        "location": store.location,
        "database": store.database,
        "embedded": store.embedded,
        "schema_version": int(version or 0),
        "spans": int(spans),
        "traces": int(traces),
        "error_spans": int(errors),
        "first_span_at": _iso(first_ns) if spans else None,
        "last_span_at": _iso(last_ns) if spans else None,
        "services": [{"name": name, "spans": int(n)} for name, n in services],
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
    status message, or a trace id prefix), ``errors_only``, ``attributes`` (exact key = value),
    ``since``/``until`` (see :func:`parse_since`).
    """
    if not 1 <= limit <= 1000:
        raise ConfigError(f"limit must be between 1 and 1000 (got {limit!r})")
    if offset < 0:
        raise ConfigError(f"offset must be 0 or more (got {offset!r})")
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    span_filters: list[str] = []
    time_filters: list[str] = []
    if service:
        span_filters.append("ServiceName = {service:String}")
        params["service"] = service
    if search:
        params["q"] = search
        span_filters.append(
            "(positionCaseInsensitiveUTF8(SpanName, {q:String}) > 0"
            " OR arrayExists(v -> positionCaseInsensitiveUTF8(v, {q:String}) > 0, mapValues(SpanAttributes))"
            " OR positionCaseInsensitiveUTF8(StatusMessage, {q:String}) > 0"
            " OR startsWith(TraceId, lower({q:String})))"
        )
    if errors_only:
        span_filters.append(_ERROR)
    for i, (key, value) in enumerate(sorted((attributes or {}).items())):
        span_filters.append(f"SpanAttributes[{{k{i}:String}}] = {{v{i}:String}}")
        params[f"k{i}"] = key
        params[f"v{i}"] = value
    if since is not None:
        time_filters.append("Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})")
        params["since_ns"] = int(parse_since(since) * 1e9)
    if until is not None:
        time_filters.append("Timestamp <= fromUnixTimestamp64Nano({until_ns:Int64})")
        params["until_ns"] = int(parse_since(until) * 1e9)
    where = " AND ".join(["TraceId != ''", *time_filters]) or "1"
    if span_filters:
        matching = " AND ".join(["TraceId != ''", *time_filters, *span_filters])
        where += f" AND TraceId IN (SELECT TraceId FROM {SPANS_TABLE} WHERE {matching})"
    sql = f"""
        SELECT
            TraceId,
            toUnixTimestamp64Nano(min(Timestamp)) AS StartNs,
            max(toUnixTimestamp64Nano(Timestamp) + Duration) AS EndNs,
            count() AS Spans,
            countIf({_ERROR}) AS Errors,
            argMin(if(ParentSpanId = '', SpanName, ''), (ParentSpanId != '', Timestamp)) AS RootName,
            argMin(SpanName, Timestamp) AS FirstName,
            argMin(ServiceName, Timestamp) AS Service,
            anyIf(SpanAttributes['gen_ai.agent.name'], SpanAttributes['gen_ai.agent.name'] != '') AS Agent,
            anyIf(SpanAttributes['tracemill.task.id'], SpanAttributes['tracemill.task.id'] != '') AS Task,
            sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])) AS InputTokens,
            sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS OutputTokens
        FROM {SPANS_TABLE}
        WHERE {where}
        GROUP BY TraceId
        ORDER BY StartNs DESC, TraceId
        LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
    """
    out = []
    for row in store.query(sql, params).result_rows:
        (trace_id, start_ns, end_ns, spans, errors, root, first, svc, agent, task, tokens_in, tokens_out) = row
        out.append(
            {
                "trace_id": trace_id,
                "name": root or first,
                "service": svc,
                "agent": agent,
                "task": task,
                "start": _iso(start_ns),
                "start_ns": int(start_ns),
                "duration_ms": round(max(0, int(end_ns) - int(start_ns)) / 1e6, 3),
                "spans": int(spans),
                "errors": int(errors),
                "input_tokens": int(tokens_in),
                "output_tokens": int(tokens_out),
            }
        )
    return out


def resolve_trace_id(store: Store, trace_id: str) -> str:
    """A full trace id from a full id or a unique prefix (at least 6 hex digits), like short git hashes."""
    wanted = trace_id.strip().lower()
    if not wanted or not _HEX.match(wanted) or len(wanted) > 32:
        raise ConfigError(f"trace id {trace_id!r} is not a hex trace id (up to 32 hex digits)")
    if len(wanted) == 32:
        return wanted
    if len(wanted) < 6:
        raise ConfigError(f"trace id prefix {trace_id!r} is too short; give at least 6 hex digits")
    found = store.query(
        f"SELECT DISTINCT TraceId FROM {SPANS_TABLE} WHERE startsWith(TraceId, {{p:String}}) LIMIT 5",
        {"p": wanted},
    ).result_rows
    if not found:
        raise TraceNotFoundError(f"no trace id starts with {wanted!r}")
    if len(found) > 1:
        shown = ", ".join(row[0] for row in found)
        raise TraceNotFoundError(f"trace id prefix {wanted!r} is ambiguous: {shown}; give more digits")
    return str(found[0][0])


_SPAN_SELECT = f"""
    SELECT
        SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes,
        ScopeName, ScopeVersion, SpanAttributes, toUnixTimestamp64Nano(Timestamp) AS StartNs, Duration,
        StatusCode, StatusMessage,
        arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes,
        Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
    FROM {SPANS_TABLE}
"""


def get_trace(store: Store, trace_id: str, *, max_spans: int = MAX_TRACE_SPANS) -> dict[str, Any]:
    """One trace as a tree of spans (children ordered by start), with every stored field of each span.

    Spans whose parent is missing become roots, so a partly received trace still shows all it has.
    The time range comes from ``otel_traces_trace_id_ts`` first, as Grafana's trace view does, so
    only the partitions of that trace are read. Raises :class:`TraceNotFoundError`.
    """
    full_id = resolve_trace_id(store, trace_id)
    params = {"tid": full_id, "max": max_spans + 1}
    rows = store.query(
        f"""WITH {{tid:String}} AS trace_id,
            (SELECT min(Start) FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace_id) AS trace_start,
            (SELECT max(End) + 1 FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace_id) AS trace_end
        {_SPAN_SELECT}
        WHERE TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end
        ORDER BY Timestamp, SpanId LIMIT {{max:UInt32}}""",
        params,
    ).result_rows
    if not rows:  # rows written before the lookup view existed have no time range there
        rows = store.query(
            f"{_SPAN_SELECT} WHERE TraceId = {{tid:String}} ORDER BY Timestamp, SpanId LIMIT {{max:UInt32}}",
            params,
        ).result_rows
    if not rows:
        raise TraceNotFoundError(f"no trace with id {full_id} in {store.location}")
    truncated = len(rows) > max_spans
    spans = [_span(full_id, row) for row in rows[:max_spans]]
    start_ns = min(s["start_ns"] for s in spans)
    end_ns = max(s["start_ns"] + s["duration_ns"] for s in spans)
    return {
        "trace_id": full_id,
        "start": _iso(start_ns),
        "start_ns": start_ns,
        "duration_ms": round((end_ns - start_ns) / 1e6, 3),
        "span_count": len(spans),
        "error_count": sum(1 for s in spans if s["error"]),
        "services": sorted({s["service"] for s in spans}),
        "truncated": truncated,
        "roots": _tree(spans),
    }


def _span(trace_id: str, row: tuple[Any, ...]) -> dict[str, Any]:
    (span_id, parent_id, trace_state, name, kind, service, resource, scope_name, scope_version, attributes,
     start_ns, duration, status_code, status_message, event_ns, event_names, event_attrs,
     link_traces, link_spans, link_states, link_attrs) = row  # fmt: skip
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_id,
        "trace_state": trace_state,
        "name": name,
        "kind": kind,
        "service": service,
        "start": _iso(start_ns),
        "start_ns": int(start_ns),
        "duration_ns": int(duration),
        "status_code": status_code,
        "status_message": status_message,
        "error": status_code in ("Error", "STATUS_CODE_ERROR"),
        "attributes": dict(attributes),
        "resource_attributes": dict(resource),
        "scope": {"name": scope_name, "version": scope_version},
        "events": [
            {"time": _iso(ns), "time_ns": int(ns), "name": n, "attributes": dict(a)}
            for ns, n, a in zip(event_ns, event_names, event_attrs, strict=True)
        ],
        "links": [
            {"trace_id": t, "span_id": s, "trace_state": st, "attributes": dict(a)}
            for t, s, st, a in zip(link_traces, link_spans, link_states, link_attrs, strict=True)
        ],
        "children": [],
    }


def _tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {s["span_id"]: s for s in spans}
    roots = []
    for span in spans:  # already in start order, so children lists come out ordered too
        parent = by_id.get(span["parent_span_id"]) if span["parent_span_id"] else None
        if parent is None or parent is span:
            roots.append(span)
        else:
            parent["children"].append(span)
    return roots


def parse_since(value: str | float | int) -> float:
    """A point in time as Unix seconds, from a number, an ISO-8601 time, or a duration back from now ('90m', '2h')."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    match = _DURATION.match(text.lower())
    if match:
        return time.time() - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"time {value!r} is not understood; use a duration back from now like 30m, 2h, 7d, "
            "an ISO-8601 time like 2025-01-31T12:00:00Z, or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _iso(ns: int) -> str:
    seconds, rest = divmod(int(ns), 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"
