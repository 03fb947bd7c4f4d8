"""The decisive-step ranker on multi-agent runs that fail without an error: grouped CV against the
baselines, ``decisive_model`` flags on the failed runs no reviewer marked, nothing with too few marks."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

import tracemill
from tracemill.collector.feedback.feedback import list_flags
from tracemill.miner.decisive.features import run_features, tokens
from tracemill.miner.decisive.spans import Candidate, Run


def _corpus():
    spec = importlib.util.spec_from_file_location("tracemill_decisive_corpus",
                                                  Path(__file__).with_name("decisive_corpus.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


corpus = _corpus()


@pytest.fixture(scope="module")
def mined(new_database, drop_database):
    """120 failed and 40 good runs; a reviewer marked 70 of the failed ones; then mined."""
    store = new_database("decisive_ranker")
    written = corpus.write(store, seed=11, failed=120, good=40)
    failed = [w for w in written if w.failure]
    random.Random(3).shuffle(failed)
    corpus.mark(store, failed[:70])
    result = tracemill.mine(store=store)
    try:
        yield store, result, failed[:70], failed[70:]
    finally:
        drop_database(store)


def test_every_failure_mode_is_written_without_an_error_and_knows_its_decisive_step(mined):
    store, _, marked, unmarked = mined
    assert {w.failure for w in marked + unmarked} == set(corpus.FAILURES)
    assert all(w.decisive for w in marked + unmarked)
    errors = store.query("SELECT count() FROM otel_traces WHERE StatusCode = 'Error' AND TraceId IN {t:Array(String)} "
                         "AND SpanName NOT LIKE 'execute_tool%'", {"t": [w.trace_id for w in marked]}).result_rows
    assert errors[0][0] == 0  # only the transient tool errors that are retried: the failures raise nothing


def test_grouped_cv_beats_the_first_step_last_step_and_rule_baselines(mined):
    _, result, marked, _ = mined
    cv = result.decisive["cv"]
    assert cv["runs"] == len(marked) and cv["folds"] == 5
    for baseline in ("first_step", "last_step", "rules"):
        assert cv["model"]["top1"] > cv[baseline]["top1"] + 0.2, cv
        assert cv["model"]["top3"] > cv[baseline]["top3"], cv
        assert cv["model"]["agent"] > cv[baseline]["agent"], cv
    assert "ranker trained on 70 marked runs" in result.decisive["note"]


def test_unmarked_failed_runs_get_one_prediction_each_and_most_are_right(mined):
    store, result, marked, unmarked = mined
    flags = list_flags(store, detector="decisive_model", limit=1000)
    by_trace = {f["trace_id"]: f for f in flags}
    assert len(flags) == len(by_trace) == result.decisive["predicted"]
    assert {w.trace_id for w in unmarked} <= set(by_trace)
    assert not {w.trace_id for w in marked} & set(by_trace)  # marked runs get none: the mark is the answer
    # The others failed by a rule's verdict (a tool error in a run whose outcome was fine), also unmarked.
    others = set(by_trace) - {w.trace_id for w in unmarked}
    ruled = {f["trace_id"] for f in list_flags(store, category="failure", limit=1000)
             if f["detector"] != "decisive_model"}
    assert others <= ruled
    assert all(f["kind"] == "decisive_step" and 0 < f["confidence"] <= 1 and "runner-ups:" in f["evidence"]
               for f in flags)
    right = sum(by_trace[w.trace_id]["span_id"] == w.decisive for w in unmarked) / len(unmarked)
    first_step = result.decisive["cv"]["first_step"]["top1"]
    assert right > max(0.5, first_step + 0.2), right


def test_a_new_mark_takes_the_prediction_away(mined):
    store, _, _, unmarked = mined
    target = unmarked[0]
    before = {f["trace_id"] for f in list_flags(store, detector="decisive_model", limit=1000)}
    tracemill.feedback.decisive(target.trace_id, target.decisive, author="ann", store=store)
    result = tracemill.mine(store=store)
    traces = {f["trace_id"] for f in list_flags(store, detector="decisive_model", limit=1000)}
    assert target.trace_id in before and traces == before - {target.trace_id}
    assert "ranker trained on 71 marked runs" in result.decisive["note"]


def test_with_too_few_marks_it_says_so_and_predicts_nothing(store):
    written = corpus.write(store, seed=5, failed=30, good=5)
    corpus.mark(store, [w for w in written if w.failure][:12])
    result = tracemill.mine(store=store)
    assert result.decisive["note"].startswith("decisive steps: 12 runs have a reviewer's mark; the ranker needs 20")
    assert list_flags(store, detector="decisive_model") == []


def _step(span_id: str, kind: str, agent: str, inp: str, out: str) -> Candidate:
    return Candidate(span_id, kind, f"{kind} {agent}", agent, 0, inp, out)


def test_features_see_a_misquoted_record_a_dropped_request_term_and_a_new_argument():
    rows = '[{"name": "LH 402", "price": 310, "nonstop": false}, {"name": "AF 1031", "price": 355, "nonstop": true}]'
    run = Run("t", "task", "cheapest nonstop flight on 2025-03-04", "LH 402 at $310", [
        _step("a", "llm", "planner", "cheapest nonstop flight on 2025-03-04", "Plan: search flights, pick cheapest"),
        _step("b", "llm", "researcher", "Plan", '{"date": "2025-03-05"}'),
        _step("c", "tool", "researcher", '{"date": "2025-03-05"}', rows),
        _step("d", "llm", "researcher", "Plan", "LH 402: $310, nonstop true; AF 1031: $355, nonstop true"),
        _step("e", "llm", "analyst", "Plan", "Best match: LH 402 at $310"),
    ])
    plan, call, tool, summary, analyst = run_features(run)
    skipped = Run("u", "task", "cheapest nonstop flight", "LH 402 at $310", [
        _step("a", "llm", "planner", "cheapest nonstop flight", "Plan: search flights, pick the cheapest"),
        _step("b", "llm", "analyst", "Plan", "LH 402 at $310, the cheapest flight")])
    assert run_features(skipped)[0]["gone:nonstop"] == 1.0
    assert "gone:nonstop" not in plan  # the summary names the condition again: it was not lost there
    assert call["new:2025-03-05"] == 1.0 and "new:2025-03-05" not in tool
    assert summary["misquoted"] > 0 and analyst["misquoted"] == 0  # it repeats the summary's claim, it did not make it
    assert tokens("LH 402 at $310.0, nonstop") == {"lh", "402", "310", "nonstop", "at"}


def test_each_convention_gives_the_ranker_the_same_steps_and_their_words(new_database, drop_database, support):
    from tracemill.miner.decisive.spans import load_runs

    conversations = support.build(seed=4, tasks=3, trials=2)
    runs = support.in_each_convention(
        new_database, drop_database, "decisive_spans", conversations,
        lambda store, traced: [load_runs(store, [t.trace_id for t in traced])[t.trace_id] for t in traced],
    )
    for genai, *others in zip(runs["genai"], runs["openinference"], runs["openllmetry"], strict=True):
        shape = [(step.kind, step.tool, step.asks_tool) for step in genai.steps]
        assert any(step.asks_tool for step in genai.steps) and genai.request
        for run in others:
            assert [(step.kind, step.tool, step.asks_tool) for step in run.steps] == shape and run.request
            for ours, theirs in zip(genai.steps, run.steps, strict=True):
                if ours.kind != "llm":
                    continue
                # The flattened messages hold the words of the GenAI JSON messages, without its keys.
                assert len(tokens(theirs.input_text)) >= 3 and tokens(theirs.input_text) <= tokens(ours.input_text)
                assert len(tokens(theirs.output_text)) >= 2 and tokens(theirs.output_text) <= tokens(ours.output_text)
