"""Support-agent runs written with the real tracer into a store, for the versions and rollout tests.

Each run is a short conversation: the model calls ``lookup_order`` (or ``hand_off`` when the user asks
for a person), the tool answers, the model replies. Failures raise nothing: the run ends with a
wrong answer and a failed outcome recorded as feedback, as a reviewer or a downstream check would.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from opentelemetry.sdk.trace.export import BatchSpanProcessor

import tracemill
from tracemill.collector.feedback.feedback import record_feedback
from tracemill.collector.ingest.exporter import StoreSpanExporter

PROMPT_A = "You are the support agent of Northwind.\nAnswer from the order record only.\nBe brief."
PROMPT_B = "You are the support agent of Northwind.\nAnswer from the order record only.\nOffer a refund first."
LOOKUP = {"type": "function", "name": "lookup_order", "description": "Find an order by id",
          "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}
HAND_OFF = {"type": "function", "name": "hand_off", "description": "Pass the conversation to a person",
            "parameters": {"type": "object", "properties": {}}}
QUESTIONS = ["Where is order {id}?", "Order {id} arrived damaged, what now?", "Can I get a person? Order {id}.",
             "Was order {id} charged twice?"]


def start_tracing(store) -> None:
    tracemill.init(processor=BatchSpanProcessor(StoreSpanExporter(store), max_export_batch_size=2048), env={})


def one_run(rng: random.Random, i: int, *, system: str, tools: list, model: str, agent_version: str = "1.0",
            choose: Callable[[int], tuple[str, str, list, float]] | None = None, fail_rate: float) -> tuple[str, bool]:
    """One run; ``choose(i)`` may pick (system, model, tools, fail_rate) itself (a rollout's arm)."""
    order = f"A{rng.randrange(10_000):04d}"
    question = rng.choice(QUESTIONS).format(id=order)
    with tracemill.run("support-agent", task_id=f"task-{i % 9}", input=question,
                       attributes={"gen_ai.agent.version": agent_version}) as run:
        if choose is not None:
            system, model, tools, fail_rate = choose(i)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        wants_person = "person" in question
        tool = "hand_off" if wants_person else "lookup_order"
        with tracemill.llm_call(provider="openai", model=model, input_messages=messages, tool_definitions=tools,
                                temperature=0.2) as call:
            call.record_output(tool_calls=[{"id": f"c{i}", "name": tool, "arguments": {"order_id": order}}])
        with tracemill.tool_call(tool, call_id=f"c{i}", arguments={"order_id": order}) as t:
            t.record_result({"status": "shipped", "order_id": order} if not wants_person else {"queued": True})
        failed = rng.random() < fail_rate
        answer = "Your order was cancelled." if failed else f"Order {order} is on its way."
        with tracemill.llm_call(provider="openai", model=model, input_messages=messages, tool_definitions=tools,
                                temperature=0.2) as call:
            call.record_output(content=answer)
        run.set_output(answer)
    assert run.trace_id is not None
    return run.trace_id, failed


def record_outcomes(store, outcomes: list[tuple[str, bool]]) -> None:
    tracemill.force_flush()
    items = [{"trace_id": t, "name": "outcome", "author": "checker", "kind": "outcome", "value": {"success": not f}}
             for t, f in outcomes]
    record_feedback(store, items)
