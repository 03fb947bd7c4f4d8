"""A labelled synthetic corpus: one scripted support agent, clean runs and injected failure modes,
written into a real chDB store two ways:

- through tracemill's tracer (``tracemill.run``, ``llm_call``, ``tool_call``), and
- through the plain OpenTelemetry SDK with GenAI attributes set by hand (no tracemill code), the way
  another instrumentation would write them, with explicit timestamps and no task id.

Both paths end in the collector's :class:`StoreSpanExporter`. Every run knows which detectors must
flag it and which span is the injected decisive one.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import tracemill
from tracemill.collector.feedback.feedback import record_feedback
from tracemill.collector.ingest.exporter import StoreSpanExporter
from tracemill.collector.store.store import Store

TOOLS = [
    {"type": "function", "function": {"name": "lookup_order", "description": "Look up an order.", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"],
        "additionalProperties": False}}},
    {"type": "function", "function": {"name": "search_kb", "description": "Search the help articles.", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund an order.", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order_id", "amount"], "additionalProperties": False}}},
]  # fmt: skip


@dataclass
class Step:
    kind: str  # "llm" or "tool"
    tool: str = ""
    args: str = ""  # the arguments as the model wrote them (JSON text, or not)
    result: Any = None
    error: str = ""  # the tool raises this
    text: str | None = None  # the LLM's final answer
    finish: str = "stop"
    call_id: str = ""


@dataclass
class Script:
    mode: str
    task: str
    steps: list[Step]
    unhandled: bool = False  # a tool error escapes the run
    decisive: int = -1  # index of the injected decisive step
    expected: set[str] = field(default_factory=set)
    outcome: dict[str, Any] | None = None


@dataclass
class Written:
    script: Script
    trace_id: str
    span_ids: list[str]  # one per step

    @property
    def decisive_span(self) -> str:
        return self.span_ids[self.script.decisive]


def _call(tool: str, args: str, n: int, result: Any = None, error: str = "") -> list[Step]:
    call_id = f"call_{n}"
    return [Step("llm", tool=tool, args=args, finish="tool_calls", call_id=call_id),
            Step("tool", tool=tool, args=args, result=result, error=error, call_id=call_id)]


_INVALID_VARIANT = itertools.count()


def script(mode: str, task: str, rng: random.Random) -> Script:
    """The steps of one run of ``mode``, with the detectors that must flag it and its decisive step."""
    order = f"A-{rng.randint(100, 999)}"
    lookup = json.dumps({"order_id": order})
    shipped = {"status": "shipped", "eta_days": 2}
    answer = [Step("llm", text=f"Your order {order} ships in 2 days.")]
    clean = _call("lookup_order", lookup, 1, shipped) + _call("search_kb", json.dumps({"query": "shipping"}), 2,
                                                              ["Orders ship in 2 days"]) + answer
    if mode in ("clean", "bad_outcome", "near_threshold"):
        expected = {"bad_outcome": {"negative_feedback"}, "near_threshold": {"outcome_near_threshold"}}
        outcome = {"bad_outcome": {"success": False}, "near_threshold": {"reward": 0.55}}.get(mode)
        return Script(mode, task, clean, decisive=4, expected=expected.get(mode, set()), outcome=outcome)
    if mode == "tool_exception":
        steps = _call("lookup_order", lookup, 1, error=f"backend unavailable for order {order}")
        return Script(mode, task, steps, unhandled=True, decisive=1, expected={"unhandled_error", "tool_error"})
    if mode == "tool_result_error":
        steps = _call("lookup_order", lookup, 1, {"error": f"order {order} does not exist"}) + answer
        return Script(mode, task, steps, decisive=1, expected={"tool_error"})
    if mode == "loop":
        query = json.dumps({"query": "refund policy"})
        steps = [s for n in range(1, 5) for s in _call("search_kb", query, n, ["Refunds take 5 days"])] + answer
        return Script(mode, task, steps, decisive=3, expected={"loop"})
    if mode == "give_up":
        refusal = "I'm sorry, I cannot help with that request."
        steps = [*_call("lookup_order", lookup, 1, shipped), Step("llm", text=refusal)]
        return Script(mode, task, steps, decisive=2, expected={"give_up"})
    if mode == "invalid_args":
        variants = [json.dumps({"order_id": order, "amount": "all of it"}), json.dumps({"order_id": order}),
                    json.dumps({"order_id": order, "amount": 5, "reason": "late"}),
                    '{"order_id": "' + order + '", amount: 5']  # the last is not JSON
        bad = variants[next(_INVALID_VARIANT) % len(variants)]
        steps = [*_call("refund", bad, 1, {"refunded": True}), Step("llm", text=f"Refund issued for {order}.")]
        return Script(mode, task, steps, decisive=0, expected={"invalid_tool_arguments"})
    if mode == "recovered_retry":
        steps = (_call("lookup_order", lookup, 1, error="connection reset by peer")
                 + _call("lookup_order", lookup, 2, shipped) + answer)
        return Script(mode, task, steps, decisive=1, expected={"recovered_error", "retry"})
    if mode == "recovered_fix":
        wrong = json.dumps({"order_id": order.lower()})
        steps = (_call("lookup_order", wrong, 1, f"Error: unknown order id {order.lower()}, ids are upper case")
                 + _call("lookup_order", lookup, 2, shipped) + answer)
        return Script(mode, task, steps, decisive=1, expected={"recovered_error"})
    if mode == "excess_steps":
        steps = _call("lookup_order", lookup, 1, shipped)
        for n in range(2, 8):
            steps += _call("search_kb", json.dumps({"query": f"shipping option {n}"}), n, ["Orders ship in 2 days"])
        return Script(mode, task, steps + answer, decisive=5, expected={"excess_cost"})
    raise ValueError(mode)


FAILURE_MODES = ("tool_exception", "tool_result_error", "loop", "give_up", "invalid_args", "recovered_retry",
                 "recovered_fix", "excess_steps", "bad_outcome", "near_threshold")  # fmt: skip


def plan(seed: int, *, clean: int, per_mode: int, tasks: int) -> list[Script]:
    rng = random.Random(seed)
    modes = ["clean"] * clean + [m for m in FAILURE_MODES for _ in range(per_mode)]
    rng.shuffle(modes)
    return [script(mode, f"task-{i % tasks}", rng) for i, mode in enumerate(modes)]


class AgentError(RuntimeError):
    pass


# -- writing through tracemill's tracer -------------------------------------------------------------


def write_with_tracer(store: Store, scripts: list[Script], *, llm_s: float = 0.015) -> list[Written]:
    memory = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(memory), service_name="support-agent", env={})
    written = []
    try:
        for s in scripts:
            span_ids: list[str] = []
            try:
                with tracemill.run("support_agent", task_id=s.task) as run:
                    run.set_output(_play_traced(s, span_ids, llm_s))
            except AgentError:
                pass
            written.append(Written(s, run.trace_id, span_ids))
        tracemill.force_flush()
        StoreSpanExporter(store).export(memory.get_finished_spans())
    finally:
        tracemill.shutdown()
    return written


def _play_traced(s: Script, span_ids: list[str], llm_s: float) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Where is my order?"}]
    final = ""
    for step in s.steps:
        if step.kind == "llm":
            with tracemill.llm_call(provider="scripted", model="policy-1", input_messages=list(messages),
                                    tool_definitions=TOOLS) as call:
                time.sleep(llm_s)
                calls = ([{"id": step.call_id, "function": {"name": step.tool, "arguments": step.args}}]
                         if step.tool else [])
                call.record_output(content=step.text, tool_calls=calls, finish_reasons=[step.finish],
                                   input_tokens=20 * len(messages), output_tokens=15)
                span_ids.append(format(call.span_context.span_id, "016x"))
            if step.text is not None:
                final = step.text
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        else:
            try:
                with tracemill.tool_call(step.tool, call_id=step.call_id, arguments=step.args) as tool:
                    span_ids.append(format(tool.span_context.span_id, "016x"))
                    if step.error:
                        raise AgentError(step.error)
                    tool.record_result(step.result)
                content = json.dumps(step.result)
            except AgentError:
                if s.unhandled:
                    raise
                content = json.dumps({"error": step.error})
            messages.append({"role": "tool", "tool_call_id": step.call_id, "content": content})
    return final


# -- writing through the plain OpenTelemetry SDK ---------------------------------------------------


def write_with_otel(store: Store, scripts: list[Script], *, versions: Callable[[int], str] = lambda i: "1.0",
                    tool_s: float = 0.1, llm_s: float = 0.4) -> list[Written]:
    """Plain SDK spans with GenAI attributes; one provider per service version; no tracemill code involved."""
    memory = InMemorySpanExporter()
    providers: dict[str, TracerProvider] = {}
    written = []
    clock = time.time_ns() - 10**12
    for index, s in enumerate(scripts):
        version = versions(index)
        if version not in providers:
            providers[version] = TracerProvider(resource=Resource.create(
                {"service.name": "support-bot", "service.version": version}))
            providers[version].add_span_processor(SimpleSpanProcessor(memory))
        tracer = providers[version].get_tracer("plain-otel-agent")
        clock += 10**10
        written.append(_play_plain(tracer, s, clock, int(tool_s * 1e9), int(llm_s * 1e9)))
    for provider in providers.values():
        provider.shutdown()
    StoreSpanExporter(store).export(memory.get_finished_spans())
    return written


def _play_plain(tracer: trace.Tracer, s: Script, start: int, tool_ns: int, llm_ns: int) -> Written:
    # No task id here: runs group by agent, so each task runs as its own agent (task-0 as plain support_bot).
    agent = "support_bot" if s.task == "task-0" else f"support_bot_{s.task}"
    root = tracer.start_span(f"invoke_agent {agent}", kind=SpanKind.INTERNAL, start_time=start,
                             attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    context = trace.set_span_in_context(root)
    now, span_ids, final, llm_spans = start + 1000, [], "", {}
    for step in s.steps:
        if step.kind == "llm":
            span = tracer.start_span("chat policy-1", context=context, kind=SpanKind.CLIENT, start_time=now)
            parts = ([{"type": "tool_call", "id": step.call_id, "name": step.tool, "arguments": step.args}]
                     if step.tool else [{"type": "text", "content": step.text}])
            span.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "policy-1",
                "gen_ai.tool.definitions": json.dumps(TOOLS),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": parts,
                                                        "finish_reason": step.finish}]),
                "gen_ai.response.finish_reasons": [step.finish],
                "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 15,
            })  # fmt: skip
            now += llm_ns
            span.end(end_time=now)
            llm_spans[step.call_id] = span.get_span_context()
            if step.text is not None:
                final = step.text
        else:
            links = [Link(llm_spans[step.call_id])] if step.call_id in llm_spans else None
            span = tracer.start_span(f"execute_tool {step.tool}", context=context, start_time=now, links=links)
            # Another instrumentation's habit: arguments as the raw text the model wrote.
            span.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": step.tool,
                                 "gen_ai.tool.call.id": step.call_id, "gen_ai.tool.call.arguments": step.args})
            now += tool_ns
            if step.error:
                span.record_exception(AgentError(step.error), timestamp=now)
                span.set_status(Status(StatusCode.ERROR, f"AgentError: {step.error}"))
            else:
                span.set_attribute("gen_ai.tool.call.result",
                                   step.result if isinstance(step.result, str) else json.dumps(step.result))
            span.end(end_time=now)
            if step.error and s.unhandled:
                span_ids.append(format(span.get_span_context().span_id, "016x"))
                root.set_status(Status(StatusCode.ERROR, f"AgentError: {step.error}"))
                break
        span_ids.append(format(span.get_span_context().span_id, "016x"))
    if final and not s.unhandled:
        root.set_attribute("output.value", final)
    root.end(end_time=now + 1000)
    return Written(s, format(root.get_span_context().trace_id, "032x"), span_ids)


def record_outcomes(store: Store, written: list[Written]) -> None:
    items = []
    for w in written:
        outcome = w.script.outcome
        if not outcome:
            continue
        label = "" if "reward" in outcome else ("success" if outcome["success"] else "failure")
        score = outcome.get("reward", 1.0 if outcome.get("success") else 0.0)
        items.append({"trace_id": w.trace_id, "name": "outcome", "author": "tests", "kind": "outcome",
                      "value": outcome, "label": label, "score": score})
    if items:
        record_feedback(store, items)
