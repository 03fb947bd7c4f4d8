"""Fixtures for dataset tests: a real chDB store and a small traced support agent with tool definitions.

The agent runs through the public tracing API (``tracemill.run``, ``@tracemill.agent``,
``@tracemill.tool``, ``tracemill.llm_call`` with tool definitions), its spans go into the store
through the store exporter, and the tests give feedback on them and export datasets. The training tests
start from ``tiny_model``, built once per session from the texts of the exports in ``trainer_exports``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import tracemill
from tracemill.collector.ingest.exporter import StoreSpanExporter
from tracemill.collector.store.store import Store
from tracemill.tracer.causality import TOOL_CALLS
from tracemill.trainer.tiny import build_tiny_model

# The helper modules next to this file (export writer, traced agent) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))

import trainer_exports

SYSTEM = "You are a support agent. Look orders up before refunding them."
TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order by id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"], "additionalProperties": False}}},
    {"type": "function", "name": "refund", "description": "Refund part or all of an order.",
     "parameters": {"type": "object", "properties": {
         "order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0},
         "reason": {"type": "string", "enum": ["damaged", "late", "other"]}},
         "required": ["order_id", "amount"]}},
]

GOOD = [
    {"tool_calls": [{"id": "call_1", "name": "lookup_order", "arguments": {"order_id": "A-17"}}]},
    {"tool_calls": [{"id": "call_2", "name": "refund", "arguments": {"order_id": "A-17", "amount": 20,
                                                                      "reason": "damaged"}}]},
    {"content": "Your order A-17 was refunded 20 EUR."},
]
BAD = [GOOD[0], {"tool_calls": [{"id": "call_2", "name": "refund", "arguments": {"order_id": "A-17",
                                                                                 "amount": 200}}]},
       {"content": "Refunded 200 EUR."}]


@tracemill.tool
def lookup_order(order_id: str) -> dict:
    return {"order_id": order_id, "status": "damaged", "paid": 20}


@tracemill.tool
def refund(order_id: str, amount: float, reason: str = "other") -> str:
    return f"refunded {amount} on {order_id}"


@tracemill.agent(name="support", version="1")
def _support(question: str, script: Sequence[dict[str, Any]], tool_definitions: Sequence[dict[str, Any]]) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    tools = {"lookup_order": lookup_order, "refund": refund}
    for reply in script:
        with tracemill.llm_call(provider="scripted", model="support-1", input_messages=list(messages),
                                system_instructions=SYSTEM, tool_definitions=tool_definitions) as call:
            call.record_output(content=reply.get("content"), tool_calls=reply.get("tool_calls", ()))
        if "tool_calls" not in reply:
            return reply["content"]
        calls = [{"id": c["id"], "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                 for c in reply["tool_calls"]]
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for c in reply["tool_calls"]:
            result = tools[c["name"]](**c["arguments"])
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": json.dumps(result)})
    return "gave up"


class Agent:
    """Runs the support agent into the store; each run is one trace of one task."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, task_id: str, script: Sequence[dict[str, Any]] = GOOD,
            question: str = "My order A-17 arrived damaged, can I get a refund?",
            tools: Sequence[dict[str, Any]] = TOOLS) -> str:
        with tracemill.run("support_run", task_id=task_id) as run:
            _support(question, script, tools)
        return run.trace_id

    def llm_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """The trace's LLM spans in order, with their recorded attributes parsed."""
        rows = self.store.query(
            "SELECT SpanId, SpanAttributes FROM otel_traces WHERE TraceId = {t:String} "
            "AND SpanAttributes['gen_ai.output.messages'] != '' ORDER BY Timestamp", {"t": trace_id}
        ).result_rows
        return [{"span_id": span_id, **{key.removeprefix("gen_ai."): json.loads(attrs[key]) for key in (
            "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
            "gen_ai.tool.definitions")}} for span_id, attrs in rows]


@pytest.fixture
def agent(store: Store) -> Iterator[Agent]:
    tracemill.init(processor=SimpleSpanProcessor(StoreSpanExporter(store)), service_name="support-tests", env={})
    try:
        yield Agent(store)
    finally:
        tracemill.shutdown()
        TOOL_CALLS.clear()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), trainer_exports.texts(), seed=0)
