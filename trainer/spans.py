"""LLM spans read in bulk, as read-only records in the chat-template shape the builders need.

An LLM span is one that recorded ``gen_ai.output.messages``. Its prompt is exactly what the
model saw: the system instructions, then the input messages (earlier tool calls and tool results
included); its tools are the recorded tool definitions. The builders never query spans one by one:
a builder names the spans (feedback keys) or traces (a subquery) it needs and gets them in one read.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import msgspec

from tracemill.collector.store.schema import SPANS_TABLE
from tracemill.trainer.chat import ChatMessage, chat_messages, chat_tools, system_messages

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["LLMSpan", "load_llm_spans", "spans_by_trace"]

_SELECT = f"""
SELECT TraceId, SpanId, toUnixTimestamp64Nano(Timestamp), TaskId, ConversationId, StatusCode,
       SpanAttributes['gen_ai.system_instructions'], SpanAttributes['gen_ai.input.messages'],
       SpanAttributes['gen_ai.output.messages'], SpanAttributes['gen_ai.tool.definitions']
FROM {SPANS_TABLE}
WHERE SpanAttributes['gen_ai.output.messages'] != ''"""


class LLMSpan(msgspec.Struct, frozen=True):
    """One model call: what it was given and what it answered, in chat-template messages (a read-only
    record; a ``msgspec.Struct`` because a large export makes one per span)."""

    trace_id: str
    span_id: str
    start_ns: int
    task_id: str
    conversation_id: str
    failed: bool
    prompt: list[ChatMessage]
    """System instructions, then the input messages."""
    output: list[ChatMessage]
    tools: list[dict[str, Any]]

    @property
    def group(self) -> str:
        """What a train/eval split keeps together: the task, else the conversation, else the trace."""
        return self.task_id or self.conversation_id or self.trace_id


def load_llm_spans(
    store: Store, *, keys_sql: str | None = None, traces_sql: str | None = None, params: dict[str, Any] | None = None
) -> dict[tuple[str, str], LLMSpan]:
    """The LLM spans whose (TraceId, SpanId) is in ``keys_sql`` or whose TraceId is in ``traces_sql``
    (subqueries), by (trace id, span id). With neither, every LLM span."""
    conditions = []
    if keys_sql:
        conditions.append(f"(TraceId, SpanId) IN ({keys_sql})")
    if traces_sql:
        conditions.append(f"TraceId IN ({traces_sql})")
    query = _SELECT + (f" AND ({' OR '.join(conditions)})" if conditions else "")
    out: dict[tuple[str, str], LLMSpan] = {}
    # An agent sends the same system instructions and tool definitions on every call: convert each text once.
    systems: dict[str, list[ChatMessage]] = {}
    toolsets: dict[str, list[dict[str, Any]]] = {}
    for row in store.query(query, params or {}).result_rows:
        trace_id, span_id, start_ns, task_id, conversation_id, status, system, inputs, outputs, tools = row
        if system not in systems:
            systems[system] = system_messages(_json(system))
        if tools not in toolsets:
            toolsets[tools] = chat_tools(_json(tools))
        out[(trace_id, span_id)] = LLMSpan(
            trace_id=trace_id,
            span_id=span_id,
            start_ns=int(start_ns),
            task_id=task_id,
            conversation_id=conversation_id,
            failed=status in ("Error", "STATUS_CODE_ERROR"),
            prompt=systems[system] + chat_messages(_json(inputs)),
            output=chat_messages(_json(outputs)),
            tools=toolsets[tools],
        )
    return out


def spans_by_trace(spans: dict[tuple[str, str], LLMSpan]) -> dict[str, list[LLMSpan]]:
    """Each trace's LLM spans in the order they started."""
    grouped: dict[str, list[LLMSpan]] = defaultdict(list)
    for span in spans.values():
        grouped[span.trace_id].append(span)
    for members in grouped.values():
        members.sort(key=lambda span: (span.start_ns, span.span_id))
    return grouped


_decode = msgspec.json.Decoder().decode


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return _decode(text)
    except msgspec.DecodeError:  # cut by the byte budget beyond repair: the text is all there is
        return [{"role": "user", "parts": [{"type": "text", "content": text}]}]
