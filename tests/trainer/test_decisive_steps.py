"""Decisive marks → stepwise supervision: steps before the marked one good, the marked one bad."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import tracemill.feedback as feedback
from tracemill.trainer import export

from .conftest import BAD


def _rows(directory):
    return [json.loads(line) for line in (directory / "train.jsonl").read_text().splitlines()]


def _span(store, trace_id, name):
    return store.query("SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} AND SpanName = {n:String}",
                       {"t": trace_id, "n": name}).result_rows[0][0]


def test_a_mark_on_an_llm_step_labels_the_steps_before_it_good_and_it_bad(agent, store, tmp_path):
    trace_id = agent.run("refund-A17", BAD)
    steps = agent.llm_spans(trace_id)
    feedback.decisive(trace_id, steps[0]["span_id"], author="ann", reason="refunds before checking", store=store)
    manifest = export("stepwise", store=store, output=tmp_path / "a", eval_fraction=0)
    (row,) = _rows(tmp_path / "a")
    assert manifest["counts"] == {"decisive_mark": 1}
    assert row["span_id"] == steps[0]["span_id"] and row["labels"] == [False]


def test_a_mark_on_a_tool_span_means_the_call_that_asked_for_it_and_wins_over_a_flag_review(agent, store, tmp_path):
    trace_id = agent.run("refund-A17", BAD)
    steps = agent.llm_spans(trace_id)
    tool_span = _span(store, trace_id, "execute_tool refund")
    # A confirmed flag on the first step would make that step the decisive one; the mark says otherwise.
    store.insert("tracemill_flags", [["r1", "0.1", trace_id, steps[0]["span_id"], "x", "1", "failure", "high", 0.9,
                                      "", datetime.now(timezone.utc)]],
                 ["RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Severity",
                  "Confidence", "Evidence", "CreatedAt"])
    feedback.record([{"trace_id": trace_id, "span_id": steps[0]["span_id"], "name": "flag_review", "author": "rev",
                      "kind": "label", "label": "confirmed", "value": {"detector": "x"}}], store=store)
    feedback.decisive(trace_id, tool_span, author="ann", store=store)
    manifest = export("stepwise", store=store, output=tmp_path / "b", eval_fraction=0)
    (row,) = _rows(tmp_path / "b")
    assert manifest["counts"] == {"decisive_mark": 1}
    assert row["span_id"] == steps[1]["span_id"] and row["labels"] == [True, False]
    assert row["completions"][-1] == 'refund({"amount": 200, "order_id": "A-17"})'
