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


def test_trials_that_each_name_their_own_conversation_are_grouped_by_the_users_identifiers(store: Any, support: Any):
    # The plain OTel SDK, one gen_ai.conversation.id per run: trials of a task share only what the user says.
    conversations = support.build(seed=4, tasks=6, trials=3)
    traced = support.write_genai(store, conversations)
    task_of = {t.trace_id: t.conversation.task.task_id for t in traced}
    frame = load_features(store, "1", {}, loop_min=3, conversations=True)
    assert frame.conversations is not None
    table = frame.conversations.result()
    assert len(set(frame["conversation_id"])) == len(traced)  # a conversation id per run: no grouping there
    for read in (lambda: table, None):  # every user turn's identifiers, else the first user input's
        keys, sources = group_keys(frame, read)
        assert set(sources) == {"user's identifiers"}
        same_key = {(a, b) for a, ka in zip(frame["trace_id"], keys, strict=True)
                    for b, kb in zip(frame["trace_id"], keys, strict=True) if ka == kb}
        assert same_key == {(a, b) for a in task_of for b in task_of if task_of[a] == task_of[b]}
    user_turn_ids = dict(zip(table.column("TraceId").to_pylist(), table.column("user_ids").to_pylist(), strict=True))
    task = conversations[0].task
    assert {task.order.order_id.lower(), task.user_id} <= set(user_turn_ids[traced[0].trace_id])


def test_common_values_and_short_numbers_do_not_join_runs():
    from tracemill.miner.features import Frame
    from tracemill.miner.grouping import identifiers

    assert identifiers("Refund #W1234567 for emma_1234, 2 items, in 2024") == ["#w1234567", "emma_1234"]
    # 30 customers, each with two runs naming their own account; every run also names one common product code.
    firsts = [f"acct-{i // 2:05d}: my sku-77777 broke" for i in range(60)] + ["no id here", "acct-99999 once"]
    n = len(firsts)
    frame = Frame({"trace_id": [f"t{i}" for i in range(n)], "task_id": [""] * n,
                   "conversation_id": [f"c{i}" for i in range(n)], "first_user": firsts})
    keys, sources = group_keys(frame)
    assert len(set(keys[:60])) == 30 and keys[0] == keys[1] == "user:acct-00000" and keys[1] != keys[2]
    assert sources[:60] == ["user's identifiers"] * 60
    assert sources[60:] == ["conversation id"] * 2  # nobody else names acct-99999: the run's own conversation
    # A conversation id that several runs share comes before the identifiers; a task id before both.
    frame.columns["conversation_id"][2] = frame.columns["conversation_id"][0]
    frame.columns["task_id"][1] = "refund"
    keys, sources = group_keys(frame)
    assert (sources[0], sources[1], sources[2]) == ("conversation id", "task id", "conversation id")
    assert keys[0] == keys[2] == "conversation:c0" and keys[4] == keys[5] == "user:acct-00002"
    assert keys[3] == "conversation:c3"  # its account's other run is grouped by conversation: none left to join


def test_a_chain_of_shared_identifiers_does_not_join_a_store_into_one_group():
    from collections import Counter

    from tracemill.miner.features import Frame

    # Run i names account i and account i + 1: every run shares an identifier with the next, a chain of 300.
    n = 300
    frame = Frame({"trace_id": [f"t{i}" for i in range(n)], "task_id": [""] * n,
                   "conversation_id": [f"c{i}" for i in range(n)],
                   "first_user": [f"acct-{i:05d} and acct-{i + 1:05d}" for i in range(n)]})
    keys, sources = group_keys(frame)
    sizes = Counter(keys)
    assert set(sources) == {"user's identifiers"}
    assert max(sizes.values()) <= 20 and len(sizes) >= n // 20  # no group past the cap on a common value
    assert keys[0] == keys[1] == "user:acct-00001"  # neighbours share a group where the cap allows, named by
    # the smallest identifier they share


def test_the_conversations_are_waited_for_only_where_a_run_has_no_task_id():
    from tracemill.miner.features import Frame

    asked: list[int] = []

    def read() -> None:
        asked.append(1)

    frame = Frame({"trace_id": ["t0", "t1"], "task_id": ["refund", "refund"], "conversation_id": ["c0", "c1"],
                   "first_user": ["acct-00001", "acct-00001"]})
    assert group_keys(frame, read) == (["task:refund"] * 2, ["task id"] * 2) and not asked
    frame.columns["task_id"][1] = ""
    _, sources = group_keys(frame, read)  # read once; no other run without a task id shares its identifier
    assert asked == [1] and sources == ["task id", "conversation id"]
