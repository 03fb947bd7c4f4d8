"""Typed reads of the store: its summary, pages of trace summaries, the spans of one trace.

Aggregation happens in ClickHouse; only one page of traces, or one trace, comes back to Python,
as :mod:`tracemill.collector.store.records`. Filters and pages are built by :mod:`tracemill.collector.store.query`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.query import ERROR_CONDITION, Filter
from tracemill.collector.store.records import EventRecord, LinkRecord, SpanRecord, StoreSummary, TraceSummary
from tracemill.collector.store.schema import SCHEMA_TABLE, SPANS_TABLE, TRACE_ID_TS_TABLE
from tracemill.collector.store.trace_ids import resolve_trace_id
from tracemill.errors import TraceNotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["MAX_TRACE_SPANS", "resolve_trace_id", "store_summary", "trace_spans", "trace_summaries"]

MAX_TRACE_SPANS = 10_000
"""At most this many spans of one trace are read (the caller is told when it was cut)."""


def store_summary(store: Store) -> StoreSummary:
    """Span, trace and error counts, time range, services and schema version of ``store``."""
    spans, traces, errors, first_ns, last_ns = store.query(
        f"SELECT count(), uniq(TraceId), countIf({ERROR_CONDITION}), "
        "toUnixTimestamp64Nano(min(Timestamp)), toUnixTimestamp64Nano(max(Timestamp)) "
        f"FROM {SPANS_TABLE}"
    ).result_rows[0]
    services = store.query(
        f"SELECT ServiceName, count() AS n FROM {SPANS_TABLE} GROUP BY ServiceName ORDER BY n DESC LIMIT 20"
    ).result_rows
    version = store.query(f"SELECT max(Version) FROM {SCHEMA_TABLE}").result_rows[0][0]
    return StoreSummary(
        location=store.location, database=store.database, embedded=store.embedded,
        schema_version=int(version or 0), spans=int(spans), traces=int(traces), error_spans=int(errors),
        first_ns=int(first_ns) if spans else None, last_ns=int(last_ns) if spans else None,
        services=tuple((name, int(n)) for name, n in services),
    )  # fmt: skip


def trace_summaries(
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
) -> list[TraceSummary]:
    """One page of traces, newest first, each summarized over all its spans.

    A trace is listed when any of its spans matches every filter (see :class:`~tracemill.collector.store.query.Filter`);
    the time filters also bound which spans are summarized.
    """
    times = Filter("t_").add("TraceId != ''").since(since).until(until)
    spans = Filter("s_").equal("ServiceName", service).search(search).errors(errors_only).attributes(attributes)
    outer = Filter().add(times.sql(), **times.params)
    if spans.conditions:
        outer.add(
            f"TraceId IN (SELECT TraceId FROM {SPANS_TABLE} WHERE {times.sql()} AND {spans.sql()})", **spans.params
        )
    page = outer.page(limit, offset)
    rows = store.query(
        f"""
        SELECT
            TraceId,
            argMin(if(ParentSpanId = '', SpanName, ''), (ParentSpanId != '', Timestamp)) AS RootName,
            argMin(SpanName, Timestamp) AS FirstName,
            argMin(ServiceName, Timestamp) AS Service,
            arraySort(groupUniqArrayIf(SpanAttributes['gen_ai.agent.name'], SpanAttributes['gen_ai.agent.name'] != ''))
                AS Agents,
            anyIf(SpanAttributes['tracemill.task.id'], SpanAttributes['tracemill.task.id'] != '') AS Task,
            toUnixTimestamp64Nano(min(Timestamp)) AS StartNs,
            max(toUnixTimestamp64Nano(Timestamp) + Duration) AS EndNs,
            count() AS Spans,
            countIf({ERROR_CONDITION}) AS Errors,
            sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])) AS InputTokens,
            sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS OutputTokens,
            countIf(ParentSpanId = '') = 0 AS RootMissing
        FROM {SPANS_TABLE}
        WHERE {outer.sql()}
        GROUP BY TraceId
        ORDER BY StartNs DESC, TraceId
        {page}
        """,
        outer.params,
    ).result_rows
    return [
        TraceSummary(
            trace_id=trace_id, name=root or first, service=service_name, agents=tuple(agents), task=task,
            start_ns=int(start_ns), end_ns=int(end_ns), spans=int(count), errors=int(errors),
            input_tokens=int(tokens_in), output_tokens=int(tokens_out), root_missing=bool(root_missing),
        )
        for (trace_id, root, first, service_name, agents, task, start_ns, end_ns, count, errors, tokens_in,
             tokens_out, root_missing) in rows
    ]


SPAN_SELECT = f"""
    SELECT
        TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes,
        ScopeName, ScopeVersion, SpanAttributes, toUnixTimestamp64Nano(Timestamp) AS StartNs, Duration,
        StatusCode, StatusMessage,
        arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes,
        Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
    FROM {SPANS_TABLE}
"""
"""Every stored field of a span, in the order :func:`span_record` reads them."""


def trace_spans(store: Store, trace_id: str, *, max_spans: int = MAX_TRACE_SPANS) -> tuple[str, list[SpanRecord], bool]:
    """The full trace id, its spans in start order, and whether there were more than ``max_spans``.

    The time range comes from ``otel_traces_trace_id_ts`` first, as Grafana's trace view does, so
    only the partitions of that trace are read. Raises :class:`TraceNotFoundError`.
    """
    full_id = resolve_trace_id(store, trace_id)
    params = {"tid": full_id, "max": max_spans + 1}
    rows = store.query(
        f"""WITH {{tid:String}} AS trace_id,
            (SELECT min(Start) FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace_id) AS trace_start,
            (SELECT max(End) + 1 FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace_id) AS trace_end
        {SPAN_SELECT}
        WHERE TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end
        ORDER BY Timestamp, SpanId LIMIT {{max:UInt32}}""",
        params,
    ).result_rows
    if not rows:  # rows written before the lookup view existed have no time range there
        rows = store.query(
            f"{SPAN_SELECT} WHERE TraceId = {{tid:String}} ORDER BY Timestamp, SpanId LIMIT {{max:UInt32}}",
            params,
        ).result_rows
    if not rows:
        raise TraceNotFoundError(f"no trace with id {full_id} in {store.location}")
    return full_id, [span_record(row) for row in rows[:max_spans]], len(rows) > max_spans


def span_record(row: Sequence[Any]) -> SpanRecord:
    """A :data:`SPAN_SELECT` row as a record."""
    (trace_id, span_id, parent_id, trace_state, name, kind, service, resource, scope_name, scope_version, attributes,
     start_ns, duration, status_code, status_message, event_ns, event_names, event_attrs,
     link_traces, link_spans, link_states, link_attrs) = row  # fmt: skip
    return SpanRecord(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent_id, trace_state=trace_state, name=name, kind=kind,
        service=service, resource_attributes=dict(resource), scope_name=scope_name, scope_version=scope_version,
        attributes=dict(attributes), start_ns=int(start_ns), duration_ns=int(duration), status_code=status_code,
        status_message=status_message,
        events=tuple(
            EventRecord(int(ns), n, dict(a)) for ns, n, a in zip(event_ns, event_names, event_attrs, strict=True)
        ),
        links=tuple(
            LinkRecord(t, s, st, dict(a))
            for t, s, st, a in zip(link_traces, link_spans, link_states, link_attrs, strict=True)
        ),
    )  # fmt: skip
