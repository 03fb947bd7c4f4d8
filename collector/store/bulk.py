"""Bulk, column-oriented reads for the miner and the trainer: many spans or traces in one query.

Each reader returns a dataclass of equal-length columns (lists), as ClickHouse returns them, so
feature code can hand them to numpy or scikit-learn without building a dict per row. Message and
tool-definition attributes come back as the stored JSON text ('' when absent): parse only what you use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.query import ERROR_CONDITION, Filter
from tracemill.collector.store.schema import SPANS_TABLE

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["LLM_OPERATIONS", "SpanColumns", "TraceAggregates", "read_spans", "trace_aggregates"]

LLM_OPERATIONS = ("chat", "text_completion", "generate_content")
"""``gen_ai.operation.name`` values of a call to a model (a decision point)."""

_MAX_IDS = 100_000


@dataclass(frozen=True)
class _Columns:
    def __len__(self) -> int:
        return len(getattr(self, dataclasses.fields(self)[0].name))

    def row(self, index: int) -> dict[str, Any]:
        """One row as a dict (for tests and small lookups; compute on the columns)."""
        return {f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class SpanColumns(_Columns):
    """Spans with what pair builders and detectors read: ids, timing, status, GenAI fields, messages."""

    trace_id: list[str]
    span_id: list[str]
    parent_span_id: list[str]
    name: list[str]
    operation: list[str]
    """``gen_ai.operation.name``: chat, execute_tool, invoke_agent, ..."""
    start_ns: list[int]
    duration_ns: list[int]
    error: list[bool]
    status_message: list[str]
    agent_name: list[str]
    tool_name: list[str]
    tool_call_id: list[str]
    model: list[str]
    """``gen_ai.request.model``."""
    input_messages: list[str]
    output_messages: list[str]
    system_instructions: list[str]
    tool_definitions: list[str]
    tool_arguments: list[str]
    tool_result: list[str]
    finish_reasons: list[str]
    attributes: list[dict[str, str]]
    """Every attribute; empty dicts unless ``with_attributes=True``."""


_SPAN_EXPRESSIONS: dict[str, str] = {
    "trace_id": "TraceId",
    "span_id": "SpanId",
    "parent_span_id": "ParentSpanId",
    "name": "SpanName",
    "operation": "SpanAttributes['gen_ai.operation.name']",
    "start_ns": "toUnixTimestamp64Nano(Timestamp)",
    "duration_ns": "Duration",
    "error": ERROR_CONDITION,
    "status_message": "StatusMessage",
    "agent_name": "SpanAttributes['gen_ai.agent.name']",
    "tool_name": "SpanAttributes['gen_ai.tool.name']",
    "tool_call_id": "SpanAttributes['gen_ai.tool.call.id']",
    "model": "SpanAttributes['gen_ai.request.model']",
    "input_messages": "SpanAttributes['gen_ai.input.messages']",
    "output_messages": "SpanAttributes['gen_ai.output.messages']",
    "system_instructions": "SpanAttributes['gen_ai.system_instructions']",
    "tool_definitions": "SpanAttributes['gen_ai.tool.definitions']",
    "tool_arguments": "SpanAttributes['gen_ai.tool.call.arguments']",
    "tool_result": "SpanAttributes['gen_ai.tool.call.result']",
    "finish_reasons": "SpanAttributes['gen_ai.response.finish_reasons']",
}


def read_spans(
    store: Store,
    *,
    trace_ids: Sequence[str] | None = None,
    span_ids: Sequence[str] | None = None,
    operations: Sequence[str] | None = None,
    with_attributes: bool = False,
) -> SpanColumns:
    """The spans of ``trace_ids`` and/or with ``span_ids`` (and, if given, one of ``operations``), ordered by
    trace and start time. Give trace ids where you have them: the store finds a trace's spans fast by its id."""
    if trace_ids is None and span_ids is None:
        raise ValueError("read_spans needs trace_ids or span_ids (reading every span is not a bulk read)")
    for name, ids in (("trace_ids", trace_ids), ("span_ids", span_ids)):
        if ids is not None and len(ids) > _MAX_IDS:
            raise ValueError(f"{name} has {len(ids)} ids; read at most {_MAX_IDS} at a time")
    where = Filter()
    if trace_ids is not None:
        where.add("TraceId IN {trace_ids:Array(String)}", trace_ids=list(trace_ids))
    if span_ids is not None:
        where.add("SpanId IN {span_ids:Array(String)}", span_ids=list(span_ids))
    if operations is not None:
        where.add("SpanAttributes['gen_ai.operation.name'] IN {ops:Array(String)}", ops=list(operations))
    selected = [*_SPAN_EXPRESSIONS.values(), "SpanAttributes" if with_attributes else "map()"]
    result = store.query(
        f"SELECT {', '.join(selected)} FROM {SPANS_TABLE} WHERE {where.sql()} ORDER BY TraceId, Timestamp, SpanId",
        where.params,
    )
    columns = [list(c) for c in result.result_columns] if result.row_count else [[] for _ in selected]
    values = dict(zip([*_SPAN_EXPRESSIONS, "attributes"], columns, strict=True))
    values["start_ns"] = [int(v) for v in values["start_ns"]]
    values["duration_ns"] = [int(v) for v in values["duration_ns"]]
    values["error"] = [bool(v) for v in values["error"]]
    values["attributes"] = [dict(v) for v in values["attributes"]]
    return SpanColumns(**values)


@dataclass(frozen=True)
class TraceAggregates(_Columns):
    """Per-trace figures computed in ClickHouse: one entry per trace."""

    trace_id: list[str]
    start_ns: list[int]
    end_ns: list[int]
    spans: list[int]
    error_spans: list[int]
    llm_calls: list[int]
    tool_calls: list[int]
    tool_errors: list[int]
    input_tokens: list[int]
    output_tokens: list[int]
    agents: list[list[str]]
    task_id: list[str]
    conversation_id: list[str]
    service: list[str]
    root_name: list[str]
    root_missing: list[bool]


_LLM = f"SpanAttributes['gen_ai.operation.name'] IN ({', '.join(repr(op) for op in LLM_OPERATIONS)})"
_TOOL = "SpanAttributes['gen_ai.operation.name'] = 'execute_tool'"
_AGENT = "SpanAttributes['gen_ai.agent.name']"
_AGGREGATES: dict[str, str] = {
    "trace_id": "TraceId",
    "start_ns": "toUnixTimestamp64Nano(min(Timestamp))",
    "end_ns": "max(toUnixTimestamp64Nano(Timestamp) + Duration)",
    "spans": "count()",
    "error_spans": f"countIf({ERROR_CONDITION})",
    "llm_calls": f"countIf({_LLM})",
    "tool_calls": f"countIf({_TOOL})",
    "tool_errors": f"countIf({_TOOL} AND {ERROR_CONDITION})",
    "input_tokens": "sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']))",
    "output_tokens": "sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']))",
    "agents": f"arraySort(groupUniqArrayIf({_AGENT}, {_AGENT} != ''))",
    "task_id": "anyIf(TaskId, TaskId != '')",
    "conversation_id": "anyIf(ConversationId, ConversationId != '')",
    "service": "argMin(ServiceName, Timestamp)",
    "root_name": "argMin(if(ParentSpanId = '', SpanName, ''), (ParentSpanId != '', Timestamp))",
    "root_missing": "countIf(ParentSpanId = '') = 0",
}


def trace_aggregates(
    store: Store,
    *,
    trace_ids: Sequence[str] | None = None,
    since: str | float | None = None,
    until: str | float | None = None,
    service: str | None = None,
) -> TraceAggregates:
    """Per-trace aggregates of the given traces, or of every trace with spans in the time range, oldest first.

    With ``since``/``until`` only the spans in that range are counted."""
    if trace_ids is not None and len(trace_ids) > _MAX_IDS:
        raise ValueError(f"trace_ids has {len(trace_ids)} ids; read at most {_MAX_IDS} at a time")
    where = Filter().add("TraceId != ''").since(since).until(until).equal("ServiceName", service)
    if trace_ids is not None:
        where.add("TraceId IN {trace_ids:Array(String)}", trace_ids=list(trace_ids))
    result = store.query(
        f"SELECT {', '.join(_AGGREGATES.values())} FROM {SPANS_TABLE} WHERE {where.sql()} "
        "GROUP BY TraceId ORDER BY min(Timestamp), TraceId",
        where.params,
    )
    columns = [list(c) for c in result.result_columns] if result.row_count else [[] for _ in _AGGREGATES]
    values = dict(zip(_AGGREGATES, columns, strict=True))
    for name in ("start_ns", "end_ns", "spans", "error_spans", "llm_calls", "tool_calls", "tool_errors",
                 "input_tokens", "output_tokens"):
        values[name] = [int(v) for v in values[name]]
    values["agents"] = [list(v) for v in values["agents"]]
    values["root_missing"] = [bool(v) for v in values["root_missing"]]
    return TraceAggregates(**values)
