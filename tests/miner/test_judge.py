"""``tracemill judge`` end to end against a local OpenAI-compatible server that answers from a script:
verdicts stored as judge feedback, refusals of answers that name no step of the run, the cache, the
token budget, backoff on 429, agreement with people, the three strategies."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tracemill.feedback as feedback
from tracemill.cli.app import app
from tracemill.collector.feedback.feedback import list_feedback
from tracemill.miner.decisive.marks import load_marks
from tracemill.miner.decisive.ranker import JUDGE_WEIGHT
from tracemill.miner.judge import client as judge_client
from tracemill.miner.judge.client import ChatClient
from tracemill.miner.judge.judge import judge


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


HERE = Path(__file__).parent
corpus = _load("tracemill_decisive_corpus", HERE / "decisive_corpus.py")
openai_server = _load("tracemill_openai_server", HERE.parent / "integrations" / "openai_server.py")


@pytest.fixture(scope="module")
def server():
    with openai_server.OpenAIServer() as running:
        yield running


@pytest.fixture
def runs(store, server):
    """Eight failed runs (three marked by a reviewer) and two good ones; the server's script emptied."""
    server.reset()
    written = corpus.write(store, seed=21, failed=8, good=2)
    failed = sorted((w for w in written if w.failure), key=lambda w: w.trace_id)
    random.Random(1).shuffle(failed)
    corpus.mark(store, failed[:3])
    unmarked = sorted(failed[3:], key=lambda w: w.trace_id)  # the judge asks in trace order
    return failed[:3], unmarked


def _answer(span_id: str, reason: str = "it misread the result") -> str:
    return json.dumps({"span_id": span_id, "reason": reason})


def _judged(store, model="m1"):
    return {f["trace_id"]: f for f in list_feedback(store, author=f"judge:{model}", limit=1000)}


def test_verdicts_are_stored_as_judge_feedback_and_invalid_answers_refused(store, server, runs):
    _, unmarked = runs
    server.reply(_answer("ffffffffffffffff"))  # not a step of the run
    server.reply("The third step, I think.")  # not JSON
    for w in unmarked[2:]:
        server.reply(_answer(w.decisive))
    report = judge(store, ChatClient("m1", base_url=server.base_url), concurrency=1)
    assert (report.asked, report.stored, report.cached) == (5, 3, 0)
    assert [r["trace_id"] for r in report.refused] == [w.trace_id for w in unmarked[:2]]
    assert "which is not a step of the run" in report.refused[0]["reason"]
    assert "not JSON" in report.refused[1]["reason"]
    stored = _judged(store)
    assert set(stored) == {w.trace_id for w in unmarked[2:]}  # refusals stored nothing
    assert all(stored[w.trace_id]["span_id"] == w.decisive and stored[w.trace_id]["kind"] == "decisive"
               for w in unmarked[2:])
    assert stored[unmarked[2].trace_id]["comment"] == "it misread the result"
    prompt = server.requests[2]["messages"][1]["content"]
    assert all(f"[{step}]" in prompt for step in [unmarked[2].decisive])  # the steps are listed with their ids
    # The ranker learns from the judge's marks at a lower weight; people's marks count fully.
    marks = load_marks(store)
    assert {marks[w.trace_id].weight for w in unmarked[2:]} == {JUDGE_WEIGHT}

    # Asked again: the three verdicts come from the cache, only the two refused runs are asked.
    for w in unmarked[:2]:
        server.reply(_answer(w.decisive))
    before = len(server.requests)
    again = judge(store, ChatClient("m1", base_url=server.base_url), concurrency=1)
    assert (again.asked, again.cached, again.refused) == (2, 3, [])
    assert len(server.requests) == before + 2
    assert set(_judged(store)) == {w.trace_id for w in unmarked}


def test_the_token_budget_stops_asking_and_429_is_retried_after_a_wait(store, server, runs, monkeypatch):
    _, unmarked = runs
    monkeypatch.setattr(judge_client, "BACKOFF_S", 0.05)
    server.reply("rate limited", status=429)
    for w in unmarked:
        server.reply(_answer(w.decisive), input_tokens=20, output_tokens=10)
    report = judge(store, ChatClient("m2", base_url=server.base_url, max_tokens=60), concurrency=1)
    assert report.rate_limited == 1
    assert (report.asked, report.stored, report.not_asked, report.tokens) == (2, 2, 3, 60)
    assert set(_judged(store, "m2")) == {w.trace_id for w in unmarked[:2]}


def test_evaluate_reports_agreement_and_a_disagreement_is_a_conflict(store, server, runs):
    marked, _ = runs
    ordered = sorted(marked, key=lambda w: w.trace_id)
    server.reply(_answer(ordered[0].decisive))
    server.reply(_answer(ordered[1].decisive))
    other = next(s for (s,) in store.query("SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} "
                                           "AND ParentSpanId != '' ORDER BY Timestamp", {"t": ordered[2].trace_id})
                 .result_rows if s != ordered[2].decisive)
    server.reply(_answer(other))
    report = judge(store, ChatClient("m3", base_url=server.base_url), concurrency=1, evaluate=True)
    assert report.evaluation is not None
    assert report.evaluation["runs"] == 3 and report.evaluation["step"] == pytest.approx(2 / 3, abs=0.001)
    (conflict,) = feedback.conflicts(trace_id=ordered[2].trace_id, store=store)
    assert {row["author"] for row in conflict["feedback"]} == {"reviewer", "judge:m3"}
    assert load_marks(store)[ordered[2].trace_id].span_id == ordered[2].decisive  # the person's mark wins


def test_outcomes_judged_concurrently_and_their_agreement_with_people(store, server, runs):
    server.default = openai_server.Reply(text=json.dumps({"success": True, "reason": "it answered"}))
    try:
        report = judge(store, ChatClient("m6", base_url=server.base_url), task="outcome", concurrency=4,
                       evaluate=True)
    finally:
        server.default = openai_server.Reply()
    assert (report.asked, report.stored, report.calls) == (10, 10, 10)
    outcomes = [f for f in list_feedback(store, author="judge:m6", kind="outcome", limit=100)]
    assert len(outcomes) == 10 and all(f["value"] == {"success": True} for f in outcomes)
    # People recorded 2 successes and 8 failures: the judge that calls every run a success agrees on 2.
    assert report.evaluation == {"runs": 10, "outcome": 0.2}


@pytest.mark.parametrize("strategy", ["step-by-step", "binary"])
def test_step_by_step_and_binary_find_the_step_they_are_led_to(store, server, runs, strategy):
    _, unmarked = runs
    target = unmarked[0]
    steps = [s for (s,) in store.query(
        "SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} AND ParentSpanId != '' ORDER BY Timestamp, SpanId",
        {"t": target.trace_id}).result_rows]
    position = steps.index(target.decisive)

    # The script answers as a model that knows the step would: no until it, or the half that holds it.
    if strategy == "step-by-step":
        for i in range(position + 1):
            server.reply(json.dumps({"decisive": i == position, "reason": "r"}))
    else:
        low, high = 0, len(steps)
        while high - low > 1:
            half = (high - low) // 2
            first = position < low + half
            server.reply(json.dumps({"half": "first" if first else "second", "reason": "r"}))
            low, high = (low, low + half) if first else (low + half, high)
    report = judge(store, ChatClient("m4", base_url=server.base_url), strategy=strategy, limit=1, concurrency=1)
    assert report.stored == 1 and _judged(store, "m4")[target.trace_id]["span_id"] == target.decisive
    assert report.calls == (position + 1 if strategy == "step-by-step" else report.calls)
    assert not server.script  # every scripted answer was asked for, no more
    if strategy == "binary":
        assert report.calls <= len(steps).bit_length()


def test_the_cli_prints_the_report_and_refuses_a_bad_strategy(store, server, runs):
    _, unmarked = runs
    for w in unmarked:
        server.reply(_answer(w.decisive))
    dsn = f"chdb://{store.dsn.path}?database={store.database}"
    runner = CliRunner()
    done = runner.invoke(app, ["judge", "--model", "m5", "--base-url", server.base_url, "--store", dsn,
                               "--concurrency", "1", "--task", "decisive"])
    assert done.exit_code == 0, done.output
    assert "judge m5 (decisive, all-at-once): asked about 5 runs" in done.stdout
    bad = runner.invoke(app, ["judge", "--strategy", "guess", "--store", dsn])
    assert bad.exit_code == 1 and "--strategy must be one of all-at-once, step-by-step, binary" in bad.output


def test_a_judges_outcome_never_labels_a_run_for_the_miner(store, server, runs):
    import tracemill.miner as miner

    good = [w for w in corpus.write(store, seed=5, failed=0, good=2)]
    by_judge, by_person = good[0].trace_id, good[1].trace_id
    feedback.outcome(by_judge, success=False, author="judge:m7", store=store)
    feedback.outcome(by_person, success=False, author="rita", store=store)
    result = miner.mine(store, remine=True)
    negative = {f.trace_id for f in result.flags if f.detector == "negative_feedback"}
    assert by_person in negative
    assert by_judge not in negative
