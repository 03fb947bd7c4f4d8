"""The detectors on a labelled corpus written through tracemill's tracer and through the plain OTel SDK."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import tracemill.miner as miner
from tracemill.collector.store.store import Store

CHECKED = ("unhandled_error", "tool_error", "loop", "give_up", "invalid_tool_arguments", "recovered_error", "retry",
           "excess_cost", "negative_feedback", "outcome_near_threshold")  # fmt: skip


@dataclass
class Mined:
    store: Store
    runs: dict[str, list[Any]]  # "tracer" / "otel" -> the written runs
    result: miner.MineResult


@pytest.fixture(scope="module")
def mined(new_database: Any, drop_database: Any, corpus: Any) -> Iterator[Mined]:
    store = new_database("detector_corpus")
    try:
        runs = {
            "tracer": corpus.write_with_tracer(store, corpus.plan(1, clean=36, per_mode=4, tasks=3)),
            "otel": corpus.write_with_otel(store, corpus.plan(2, clean=36, per_mode=4, tasks=1)),
        }
        corpus.record_outcomes(store, runs["tracer"] + runs["otel"])
        # The tracer path runs on the wall clock, where a loaded machine can stall one clean run for a second;
        # time outliers are not what this corpus tests, so they need a minute's excess here.
        yield Mined(store, runs, miner.mine(store, config=miner.MinerConfig(min_excess_s=60.0)))
    finally:
        drop_database(store)


def _flags_by_detector(flags: list[miner.Flag]) -> dict[str, dict[str, miner.Flag]]:
    out: dict[str, dict[str, miner.Flag]] = defaultdict(dict)
    for flag in flags:
        out[flag.detector].setdefault(flag.trace_id, flag)
    return out


@pytest.mark.parametrize("path", ["tracer", "otel"])
@pytest.mark.parametrize("name", CHECKED)
def test_detector_finds_its_injected_runs_and_nothing_else(mined: Mined, path: str, name: str):
    runs = mined.runs[path]
    flagged = _flags_by_detector(mined.result.flags)[name]
    ours = {run.trace_id for run in runs}
    truth = {run.trace_id for run in runs if name in run.script.expected}
    found = set(flagged) & ours
    assert truth, f"the corpus has no {name} runs"
    true_positives = len(found & truth)
    precision = true_positives / len(found) if found else 0.0
    recall = true_positives / len(truth)
    wrong = sorted({r.script.mode for r in runs if r.trace_id in found - truth})
    message = f"{name}: precision {precision:.2f} (also flagged {wrong}), recall {recall:.2f}"
    assert (precision, recall) == (1.0, 1.0), message


@pytest.mark.parametrize("path", ["tracer", "otel"])
def test_every_flag_names_the_injected_decisive_span(mined: Mined, path: str):
    by_detector = _flags_by_detector(mined.result.flags)
    misses = []
    for run in mined.runs[path]:
        for name in run.script.expected:
            flag = by_detector[name].get(run.trace_id)
            if flag is not None and flag.span_id != run.decisive_span:
                misses.append((run.script.mode, name, flag.span_id, run.decisive_span, run.span_ids))
    assert not misses


@pytest.mark.parametrize("path", ["tracer", "otel"])
def test_clean_runs_are_not_flagged(mined: Mined, path: str):
    clean = {run.trace_id for run in mined.runs[path] if run.script.mode == "clean"}
    flagged = [(f.detector, f.evidence) for f in mined.result.flags if f.trace_id in clean]
    assert not flagged


def test_every_detector_is_a_documented_named_unit():
    assert len(miner.DETECTORS) == 16
    for name, unit in miner.DETECTORS.items():
        assert unit.name == name and unit.version and unit.kind
        assert unit.category in ("failure", "near_miss", "signal")
        assert len(unit.doc) > 60, name


def test_invalid_arguments_cover_wrong_types_missing_and_unknown_keys_and_text_that_is_not_json(mined: Mined):
    evidence = [f.evidence for f in mined.result.flags if f.detector == "invalid_tool_arguments"]
    assert len(evidence) == 8, evidence
    assert any('"all of it"' in e for e in evidence)  # a string where the schema wants a number
    assert any('"reason"' in e for e in evidence)  # a key additionalProperties: false does not allow
    assert any(e.endswith('amount: 5') or 'amount: 5"' in e for e in evidence)  # not JSON
    missing = [f for f in mined.result.flags if f.detector == "invalid_tool_arguments" and "amount" not in f.evidence]
    assert missing  # a required key missing


def test_flags_carry_category_kind_severity_and_evidence(mined: Mined):
    for flag in mined.result.flags:
        unit = miner.DETECTORS[flag.detector]
        assert flag.category == unit.category
        assert flag.severity in ("high", "medium", "low")
        assert 0.0 < flag.confidence <= 1.0
        assert flag.evidence
        assert flag.kind
    kinds = {f.kind for f in mined.result.flags if f.detector == "tool_error"}
    assert kinds == {"tool_error", "tool_result_error"}


def test_flags_in_the_store_match_the_result(mined: Mined):
    rows = mined.store.query(
        "SELECT TraceId, SpanId, Detector, Category, Kind FROM tracemill_flags FINAL"
    ).result_rows
    assert sorted(rows) == sorted((f.trace_id, f.span_id, f.detector, f.category, f.kind) for f in mined.result.flags)


def test_every_trace_gets_a_score(mined: Mined):
    count = mined.store.query("SELECT count() FROM tracemill_trace_scores FINAL").result_rows[0][0]
    assert count == mined.result.traces == sum(len(r) for r in mined.runs.values())


def test_with_too_few_outcome_labels_the_scorer_falls_back_to_anomaly_scores_and_says_so(mined: Mined):
    assert mined.result.scorer["mode"] == "anomaly"
    note = mined.result.scorer["note"]
    assert "too few outcome labels for a supervised scorer (16 traces with outcome feedback" in note
    scores = mined.store.query("SELECT min(FailureProbability), max(FailureProbability), any(ModelVersion) "
                               "FROM tracemill_trace_scores FINAL").result_rows[0]
    assert scores == (0.0, 1.0, "isolation-forest-1")
    assert not [f for f in mined.result.flags if f.detector == "outcome_model"]


def test_mining_again_adds_nothing_and_duplicates_no_flag(mined: Mined):
    before = mined.store.query("SELECT count() FROM tracemill_flags FINAL").result_rows[0][0]
    again = miner.mine(mined.store)
    assert again.traces == 0  # nothing new, and the labels the stored scores were trained on
    remined = miner.mine(mined.store, remine=True)
    assert remined.traces == mined.result.traces
    rows = mined.store.query(
        "SELECT TraceId, Detector, SpanId, count() FROM tracemill_flags FINAL GROUP BY TraceId, Detector, SpanId "
        "HAVING count() > 1"
    ).result_rows
    assert rows == []
    after = mined.store.query("SELECT count() FROM tracemill_flags FINAL").result_rows[0][0]
    assert after == before == len(remined.flags)


def test_taxonomy_groups_the_error_messages_of_both_paths(mined: Mined):
    groups = {group["name"]: group for group in mined.result.taxonomy}
    unavailable = [g for name, g in groups.items() if "backend unavailable for order" in name]
    missing = [g for name, g in groups.items() if "does not exist" in name]
    assert [g["count"] for g in unavailable] == [8], groups  # 4 runs written by each path, one group
    assert [g["count"] for g in missing] == [8], groups
    assert unavailable[0]["tools"] == {"lookup_order": 8}
    assert missing[0]["name"] == "lookup_order: order a-<num> does not exist"
    assert len(unavailable[0]["examples"]) == 3


def test_top_decisive_steps_name_span_names(mined: Mined):
    names = {step["span_name"] for step in mined.result.top_steps}
    assert "execute_tool lookup_order" in names


def test_feedback_after_mining_is_mined_next_time_and_a_withdrawn_verdict_drops_its_flag(store, corpus):
    import random

    from tracemill.collector.feedback.feedback import record_feedback

    written = corpus.write_with_otel(store, [corpus.script("clean", "task-0", random.Random(i)) for i in range(10)])
    assert miner.mine(store).flags == []
    item = {"trace_id": written[3].trace_id, "name": "thumbs", "author": "ann", "kind": "label", "label": "bad"}
    record_feedback(store, [item])
    second = miner.mine(store)
    assert second.traces == 1
    assert [(f.trace_id, f.detector, f.span_id) for f in second.flags] == [
        (written[3].trace_id, "negative_feedback", written[3].span_ids[-1])
    ]
    record_feedback(store, [{**item, "deleted": True}])
    third = miner.mine(store)
    assert third.traces == 1 and third.flags == []
    assert store.query("SELECT count() FROM tracemill_flags FINAL").result_rows == [(0,)]


def test_the_taxonomy_is_stored_as_the_miner_computed_it(mined: Mined):
    from tracemill.miner.quality.taxonomy_store import latest_taxonomy

    assert mined.result.taxonomy and latest_taxonomy(mined.store) == mined.result.taxonomy


def _lookups(store: Store, support: Any, runs: int, *, content: bool) -> None:
    """Runs that look up three different orders in the GenAI conventions, with or without message content (the
    OTel GenAI instrumentations record none unless told to)."""
    from opentelemetry import trace

    with support.sdk_tracer(store, "orders-agent") as tracer:
        for run in range(runs):
            with tracer.start_as_current_span("invoke_agent orders", attributes={"gen_ai.operation.name":
                                                                                 "invoke_agent"}):
                for k in range(3):
                    with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT,
                                                      attributes={"gen_ai.operation.name": "chat"}):
                        pass
                    recorded = {"gen_ai.tool.call.arguments": f'{{"order_id": "#W{run}{k}"}}',
                                "gen_ai.tool.call.result": '{"status": "delivered"}'} if content else {}
                    with tracer.start_as_current_span("execute_tool get_order", attributes={
                            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_order", **recorded}):
                        pass


def test_calls_that_recorded_nothing_are_no_loop(new_database: Any, drop_database: Any, support: Any):
    plain, recorded = new_database("loop_without_content"), new_database("loop_with_content")
    try:
        _lookups(plain, support, 4, content=False)
        _lookups(recorded, support, 4, content=True)
        for store in (plain, recorded):
            result = miner.mine(store)
            assert result.traces == 4 and not [f for f in result.flags if f.detector in ("loop", "retry")]
        # The same call three times with recorded arguments is one.
        recorded.command("ALTER TABLE otel_traces UPDATE SpanAttributes = mapUpdate(SpanAttributes, map("
                         "'gen_ai.tool.call.arguments', '{\"order_id\": \"#W1\"}')) "
                         "WHERE SpanName = 'execute_tool get_order' SETTINGS mutations_sync = 1")
        looped = miner.mine(recorded, remine=True)
        assert len({f.trace_id for f in looped.flags if f.detector == "loop"}) == 4
    finally:
        drop_database(plain)
        drop_database(recorded)
