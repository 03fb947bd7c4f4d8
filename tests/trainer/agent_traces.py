"""Trace the weather agent of trainer_exports into a chDB store, then correct its refusals as a reviewer would.

Run as a script in a process of its own (chDB allows one store directory per process):
``python agent_traces.py chdb:///abs/path`` traces one run per (question, city), each a task of its own, whose
LLM call answers with a refusal, and records a correction for each (the tool call it should have made) with
``tracemill.feedback.correct``. Prints the number of corrections.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import trainer_exports

import tracemill


def trace_runs(dsn: str) -> list[tuple[str, str, str, str]]:
    """One traced run per (question, city); returns (trace id, span id, tool, city) of each LLM call."""
    tracemill.init(store=dsn, service_name="weather-agent", env={})
    calls = []
    for i, city in enumerate(trainer_exports.CITIES):
        for j, (what, name) in enumerate(trainer_exports.QUESTIONS):
            with tracemill.run("weather-agent", task_id=f"{what}-{city}"):
                call = tracemill.llm_call(
                    provider="local", model="tiny", system_instructions=trainer_exports.SYSTEM,
                    input_messages=[{"role": "user", "content": f"What is the {what} in {city}?"}],
                    tool_definitions=trainer_exports.TOOLS)
                with call:
                    call.record_output(content=trainer_exports.REFUSALS[(i + j) % len(trainer_exports.REFUSALS)]
                                       .format(what=what, city=city), finish_reasons=["stop"])
                context = call.span.get_span_context()
                calls.append((format(context.trace_id, "032x"), format(context.span_id, "016x"), name, city))
    tracemill.force_flush()
    tracemill.shutdown()
    return calls


def correct(dsn: str, calls: list[tuple[str, str, str, str]]) -> int:
    store = tracemill.Store.open(dsn)
    try:
        for trace_id, span_id, name, city in calls:
            tracemill.feedback.correct(trace_id, span_id, author="reviewer", store=store,
                                       tool_calls=[{"id": "call_1", "name": name, "arguments": {"city": city}}])
    finally:
        store.close()
    return len(calls)


if __name__ == "__main__":
    print(correct(sys.argv[1], trace_runs(sys.argv[1])))
