"""The customer-service corpus is shaped like production: the properties the miner's tests rely on."""

from __future__ import annotations

from collections import Counter
from typing import Any


def test_outcomes_come_from_state_changes_and_most_failures_raise_nothing(support: Any):
    conversations = support.build()
    trials = Counter(c.task.task_id for c in conversations)
    assert len(trials) == 40 and set(trials.values()) == {5}
    failed = [c for c in conversations if not c.success]
    assert 0.3 < len(failed) / len(conversations) < 0.65
    silent = [c for c in failed if not any(e.failed for e in c.events)]
    assert len(silent) / len(failed) > 0.9
    # Every conversation is multi-turn, with read calls before any write.
    for c in conversations:
        assert sum(e.kind == "user" for e in c.events) >= 2
        tools = [e.tool for e in c.events if e.kind == "tool"]
        assert tools[0] in support.READ_TOOLS
    # Refusals and hand-offs are often the correct ending.
    good_endings = Counter(c.task.kind for c in conversations if c.success and c.task.kind in
                           ("cancel_delivered", "refund_late", "damaged"))
    assert min(good_endings.values()) >= 5
    handoffs = [c for c in conversations if any(e.tool == "transfer_to_human_agents" for e in c.events)]
    assert any(c.success for c in handoffs) and any(not c.success for c in handoffs)
    assert any(c.final_text is None for c in handoffs)  # ends with the hand-off call itself
    # A harmless error (a mistyped order id, corrected) ends in success.
    assert any(c.success and any("not found" in str(e.result) for e in c.events) for c in conversations)


def test_three_ways_of_tracing_store_the_same_conversations(support: Any, store: Any):
    conversations = support.build(tasks=8, trials=2)
    written = (support.write_genai(store, conversations) + support.write_openinference(store, conversations)
               + support.write_tracemill(store, conversations))
    assert len({t.trace_id for t in written}) == 48
    rows = dict(store.query(
        "SELECT ServiceName, count() FROM otel_traces "
        "WHERE mapContains(SpanAttributes, 'llm.input_messages.0.message.role') "
        "OR mapContains(SpanAttributes, 'gen_ai.input.messages') GROUP BY ServiceName").result_rows)
    assert {"retail-support", "retail-support-oi"} <= set(rows)
    tasks = store.query("SELECT uniqExact(TaskId) FROM otel_traces WHERE TaskId != ''").result_rows[0][0]
    assert tasks == 8  # only tracemill's tracer records the task
