"""Runs without a task id are grouped by the closest key: here, the first user input of GenAI messages."""

from __future__ import annotations

import json
from typing import Any

from tracemill.miner.feature_cache import load_features
from tracemill.miner.grouping import group_keys


def _write(store: Any, support: Any, runs: list[tuple[str, list[dict[str, Any]]]]) -> None:
    from opentelemetry import trace

    with support.sdk_tracer(store) as tracer:
        for name, messages in runs:
            root = tracer.start_span(f"invoke_agent {name}", attributes={"gen_ai.operation.name": "invoke_agent"})
            tracer.start_span("chat gpt-4o", context=trace.set_span_in_context(root), attributes={
                "gen_ai.operation.name": "chat", "gen_ai.input.messages": json.dumps(messages)}).end()
            root.end()


def test_the_first_user_turn_is_read_after_a_long_system_prompt(store: Any, support: Any):
    system = {"role": "system", "parts": [{"type": "text", "content": "Follow the refund policy. " * 400}]}

    def user(text: str) -> dict[str, Any]:
        return {"role": "user", "parts": [{"type": "text", "content": text}]}

    _write(store, support, [("a", [system, user("Refund order 1")]), ("b", [system, user("Refund order 2")]),
                   ("c", [system, {"role": "user", "content": "Where is my parcel?"}]), ("d", [system])])
    frame = load_features(store, "1", {}, loop_min=3)
    keys, sources = group_keys(frame)
    by_user = dict(zip(frame["first_user"], keys, strict=True))
    assert len(json.dumps(system)) > 10_000
    assert sorted(frame["first_user"]) == ["", "Refund order 1", "Refund order 2", "Where is my parcel?"]
    assert by_user["Refund order 1"] == by_user["Refund order 2"]  # numbers masked: trials of one task
    assert by_user["Where is my parcel?"] != by_user["Refund order 1"]
    assert sorted(sources) == ["first user input"] * 3 + ["trace"]
