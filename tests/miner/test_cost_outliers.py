"""Cost outliers among peers: a run far slower than the other runs of its task is a latency outlier (a failure),
and a run that did not fail but spent far more tokens is a near miss (excess cost)."""

from __future__ import annotations

from typing import Any

import tracemill.miner as miner

SECOND = 1_000_000_000


def _write_runs(store: Any, support: Any, runs: list[tuple[float, int]]) -> list[str]:
    """One trace per (seconds, tokens): an agent span over one chat call, timed with explicit clocks."""
    from opentelemetry import trace

    traces, start = [], 1_700_000_000 * SECOND
    with support.sdk_tracer(store) as tracer:
        for index, (seconds, tokens) in enumerate(runs):
            begin = start + index * 100 * SECOND
            root = tracer.start_span("invoke_agent billing", start_time=begin,
                                     attributes={"gen_ai.operation.name": "invoke_agent", "tracemill.task.id": "t1"})
            chat = tracer.start_span("chat gpt-4o", context=trace.set_span_in_context(root), start_time=begin,
                                     attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": tokens,
                                                 "gen_ai.output.messages": '[{"role": "assistant", "parts": '
                                                 '[{"type": "text", "content": "Your invoice is paid."}]}]'})
            chat.end(end_time=begin + int(seconds * SECOND))
            root.end(end_time=begin + int(seconds * SECOND) + 1000)
            traces.append(format(root.get_span_context().trace_id, "032x"))
    return traces


def test_a_slow_run_and_a_costly_run_are_found_among_their_peers(store: Any, support: Any):
    typical = [(2.0 + 0.1 * (i % 5), 1000 + 20 * (i % 7)) for i in range(14)]
    traces = _write_runs(store, support, [*typical, (90.0, 1010), (2.1, 40_000)])
    flags = miner.mine(store).flags
    slow = {f.trace_id: f for f in flags if f.detector == "latency_outlier"}
    costly = {f.trace_id: f for f in flags if f.detector == "excess_cost"}
    assert set(slow) == {traces[-2]}
    assert "peers' median 2.20 s" in slow[traces[-2]].evidence
    assert set(costly) == {traces[-1]}
    assert costly[traces[-1]].kind == "excess_tokens"
    assert costly[traces[-1]].evidence.startswith("4e+04 tokens vs peers' median 1060")
