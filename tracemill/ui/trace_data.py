"""A trace read for the review page: a light outline of every span, and the full content of a few.

The page of a run with thousands of spans must render fast, so the outline reads only what the
tree and the waterfall show (ids, names, times, status, a one-line summary computed in
ClickHouse); a span's messages, tool calls and attributes are read when it is opened (the
decisive span's at once). Both read only the trace's time range, found in
``otel_traces_trace_id_ts`` as :func:`tracemill.collector.server.api.get_trace` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracemill.collector.server.api import span_json
from tracemill.collector.store.reads import MAX_TRACE_SPANS, SPAN_SELECT, resolve_trace_id, span_record
from tracemill.collector.store.schema import SPANS_TABLE, TRACE_ID_TS_TABLE
from tracemill.errors import SpanNotFoundError, TraceNotFoundError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["span_details", "trace_outline"]

_OUT = "SpanAttributes['gen_ai.output.messages']"
_RANGE = f"""WITH {{tid:String}} AS trace_id,
    (SELECT min(Start) FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace_id) AS trace_start,
    (SELECT max(End) + 1 FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace_id) AS trace_end"""
_IN_RANGE = "TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end"
_OUTLINE_COLUMNS = f"""SpanId, ParentSpanId, SpanName, toUnixTimestamp64Nano(Timestamp), Duration, StatusCode,
    StatusMessage, GenAiOperation,
    if(SpanAttributes['gen_ai.input.messages'] = '', 0, cityHash64(SpanAttributes['gen_ai.input.messages'])),
    multiIf(
        GenAiOperation IN ('chat', 'text_completion', 'generate_content'),
            if(JSONExtractString({_OUT}, 1, 'parts', 1, 'type') = 'tool_call',
               concat('→ ', JSONExtractString({_OUT}, 1, 'parts', 1, 'name'), '(',
                      substringUTF8(JSONExtractRaw({_OUT}, 1, 'parts', 1, 'arguments'), 1, 80), ')'),
               substringUTF8(JSONExtractString({_OUT}, 1, 'parts', 1, 'content'), 1, 160)),
        SpanAttributes['gen_ai.tool.call.arguments'] != '',
            substringUTF8(SpanAttributes['gen_ai.tool.call.arguments'], 1, 160),
        substringUTF8(SpanAttributes['tracemill.output'], 1, 160))"""
_KEYS = ("span_id", "parent_span_id", "name", "start_ns", "duration_ns", "status_code", "status_message",
         "operation", "input_hash", "summary")


def trace_outline(store: Store, trace_id: str, *, max_spans: int = MAX_TRACE_SPANS) -> dict[str, Any]:
    """Every span of the trace, light: ``{trace_id, spans: [...], truncated}``. Raises TraceNotFoundError."""
    full_id = resolve_trace_id(store, trace_id)
    params = {"tid": full_id, "max": max_spans + 1}
    rows = store.query(
        f"{_RANGE} SELECT {_OUTLINE_COLUMNS} FROM {SPANS_TABLE} WHERE {_IN_RANGE} "
        "ORDER BY Timestamp, SpanId LIMIT {max:UInt32}",
        params,
    ).result_rows
    if not rows:  # rows written before the lookup view existed have no time range there
        rows = store.query(
            f"SELECT {_OUTLINE_COLUMNS} FROM {SPANS_TABLE} WHERE TraceId = {{tid:String}} "
            "ORDER BY Timestamp, SpanId LIMIT {max:UInt32}",
            params,
        ).result_rows
    if not rows:
        raise TraceNotFoundError(f"no trace with id {full_id} in {store.location}")
    spans = [dict(zip(_KEYS, row, strict=True)) for row in rows[:max_spans]]
    for span in spans:
        span["start_ns"], span["duration_ns"] = int(span["start_ns"]), int(span["duration_ns"])
        span["error"] = span["status_code"] in ("Error", "STATUS_CODE_ERROR")
    return {"trace_id": full_id, "spans": spans, "truncated": len(rows) > max_spans}


def span_details(store: Store, trace_id: str, span_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Every stored field of the given spans of one trace, by span id. Raises SpanNotFoundError for one missing."""
    wanted = sorted(set(span_ids))
    if not wanted:
        return {}
    params = {"tid": trace_id, "ids": wanted}
    rows = store.query(
        f"{_RANGE} {SPAN_SELECT} WHERE {_IN_RANGE} AND SpanId IN {{ids:Array(String)}}", params
    ).result_rows
    if len(rows) < len(wanted):
        rows = store.query(
            f"{SPAN_SELECT} WHERE TraceId = {{tid:String}} AND SpanId IN {{ids:Array(String)}}", params
        ).result_rows
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        span = span_json(span_record(row))
        found.setdefault(span["span_id"], span)
    missing = [s for s in wanted if s not in found]
    if missing:
        raise SpanNotFoundError(f"trace {trace_id} has no span {missing[0]}")
    return found
