"""Scores follow the model: mining before labelling gives the same scores and flags as labelling first."""

from __future__ import annotations

import random
from typing import Any

import pytest

import tracemill.miner as miner
from tracemill.miner.config import MinerConfig
from tracemill.miner.scoring.model_scope import model_changed
from tracemill.miner.scoring.scorer import planned_version_in_store


def _state(store: Any, traced: list[Any]) -> tuple[list[tuple[str, float]], list[set[tuple[str, str]]]]:
    """Per conversation (in corpus order): (model version, probability) and its (detector, kind) flags."""
    scores = dict((t, (v, p)) for t, v, p in store.query(
        "SELECT TraceId, ModelVersion, FailureProbability FROM tracemill_trace_scores FINAL").result_rows)
    flags: dict[str, set[tuple[str, str]]] = {}
    for trace, detector, kind in store.query("SELECT TraceId, Detector, Kind FROM tracemill_flags FINAL").result_rows:
        flags.setdefault(trace, set()).add((detector, kind))
    return [scores[t.trace_id] for t in traced], [flags.get(t.trace_id, set()) for t in traced]


@pytest.fixture(scope="module")
def both_orders(new_database: Any, drop_database: Any, support: Any) -> Any:
    conversations = support.build(seed=5, tasks=24, trials=4)
    tasks = sorted({c.task.task_id for c in conversations})
    half = set(random.Random(3).sample(tasks, len(tasks) // 2))
    label_first, mine_first = new_database("label_first"), new_database("mine_first")
    try:
        a = support.write_tracemill(label_first, conversations)
        support.record_outcomes(label_first, a, tasks=half)
        result_a = miner.mine(label_first)

        # The same spans in the second store (the tracer's timings differ from one write to the next).
        mine_first.command(f"INSERT INTO `{mine_first.database}`.otel_traces "
                           f"SELECT * FROM `{label_first.database}`.otel_traces")
        b = a
        before = miner.mine(mine_first)
        support.record_outcomes(mine_first, b, tasks=half)
        changed = model_changed(mine_first, planned_version_in_store(mine_first, MinerConfig()))
        result_b = miner.mine(mine_first)
        unchanged = not model_changed(mine_first, planned_version_in_store(mine_first, MinerConfig()))
        yield ((_state(label_first, a), result_a), (_state(mine_first, b), result_b), before, conversations, half,
               (changed, unchanged))
    finally:
        drop_database(label_first)
        drop_database(mine_first)


def test_mining_before_labelling_gives_the_same_scores_as_labelling_first(both_orders: Any):
    (state_a, result_a), (state_b, result_b), before, *_ = both_orders
    assert before.scorer["mode"] == "anomaly"
    assert result_a.scorer["mode"] == result_b.scorer["mode"] == "supervised"
    assert result_a.scorer["model_version"] == result_b.scorer["model_version"]
    assert result_a.scorer["model"] == result_b.scorer["model"]
    versions = {v for v, _ in state_b[0]}
    assert versions == {result_b.scorer["model_version"]}  # no trace kept its anomaly score
    assert [p for _, p in state_a[0]] == pytest.approx([p for _, p in state_b[0]], abs=1e-6)
    assert state_a[1] == state_b[1]
    assert result_b.traces == len(state_b[0])  # the second run re-mined every trace, not only the labelled ones


def test_the_labels_tell_before_any_feature_is_computed_whether_every_trace_needs_re_scoring(both_orders: Any):
    """The version planned from the feedback alone names the model the run then trains: new labels make the
    run re-score every trace in one pass, and once scored, the same labels ask for nothing more."""
    *_, (changed, unchanged) = both_orders
    assert changed and unchanged


def test_labels_that_cannot_train_a_model_do_not_re_mine_the_store_every_time(new_database: Any,
                                                                               drop_database: Any, support: Any):
    store = new_database("two_groups")
    try:
        traced = support.write_tracemill(store, support.build(seed=8, tasks=4, trials=12))
        tasks = sorted({t.conversation.task.task_id for t in traced})[:2]
        labelled = support.record_outcomes(store, traced, tasks=set(tasks))
        first = miner.mine(store)
        again = miner.mine(store)
        support.write_tracemill(store, support.build(seed=9, tasks=1, trials=1))
        third = miner.mine(store)
    finally:
        drop_database(store)
    assert first.scorer["mode"] == "anomaly" and "2 task groups" in first.scorer["note"]
    assert first.traces == len(traced)
    assert again.traces == 0  # nothing new, the same labels
    assert third.traces == labelled + 1 < len(traced)  # the new run and the labelled ones the scorer reads


def test_a_new_unlabelled_trace_is_scored_without_re_mining_the_store(new_database: Any, drop_database: Any,
                                                                      support: Any):
    store = new_database("incremental")
    try:
        first = support.build(seed=6, tasks=8, trials=2)
        support.write_tracemill(store, first)
        miner.mine(store)
        support.write_tracemill(store, support.build(seed=7, tasks=1, trials=1))
        again = miner.mine(store)
    finally:
        drop_database(store)
    assert again.traces == 1
