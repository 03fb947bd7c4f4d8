"""Miner flags → the review dataset, and flags confirmed by a reviewer → stepwise (process) supervision."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import tracemill.feedback as feedback
from tracemill.trainer import export

from .conftest import BAD

_FLAG_COLUMNS = ["RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Severity",
                 "Confidence", "Evidence", "CreatedAt"]


def _rows(directory, name="train"):
    return [json.loads(line) for line in (directory / f"{name}.jsonl").read_text().splitlines()]


def test_flags_become_a_review_dataset_and_a_confirmed_flag_a_stepwise_row(agent, store, tmp_path):
    trace_id = agent.run("refund-A17", BAD)
    steps = agent.llm_spans(trace_id)
    tool_span = store.query("SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} "
                            "AND SpanName = 'execute_tool refund'", {"t": trace_id}).result_rows[0][0]
    now = datetime.now(timezone.utc)
    store.insert("tracemill_flags", [
        ["r1", "0.1", trace_id, tool_span, "tool_error", "1", "failure", "high", 0.9, "refund over the paid amount",
         now],
        ["r1", "0.1", trace_id, steps[1]["span_id"], "excess_amount", "1", "near_miss", "low", 0.4, "200 > 20", now],
    ], _FLAG_COLUMNS)
    feedback.record([{"trace_id": trace_id, "span_id": tool_span, "name": "flag_review", "author": "rev",
                      "kind": "label", "label": "confirmed", "value": {"detector": "tool_error"}}], store=store)

    manifest = export("flags", store=store, output=tmp_path / "flags", eval_fraction=0)
    assert manifest["counts"] == {"flag": 2}
    first, second = _rows(tmp_path / "flags")
    assert (first["detector"], first["span_id"], first["confidence"], first["review"]) == (
        "tool_error", tool_span, 0.9, "confirmed")
    assert first["prompt"] == [] and first["evidence"] == "refund over the paid amount"
    assert (second["detector"], second["review"], second["category"]) == ("excess_amount", "", "near_miss")
    assert second["prompt"][0] == {"role": "system", "content": "You are a support agent. Look orders up before "
                                                                "refunding them."}
    assert second["output"][0]["tool_calls"][0]["function"]["arguments"] == {"order_id": "A-17", "amount": 200}

    manifest = export("stepwise", store=store, output=tmp_path / "steps", eval_fraction=0)
    (row,) = _rows(tmp_path / "steps")
    assert manifest["counts"] == {"flag_review": 1}
    # The confirmed flag is on a tool span: the model call that asked for that tool is the decisive step.
    assert row["span_id"] == steps[1]["span_id"] and row["labels"] == [True, False]
    assert row["completions"][-1] == 'refund({"amount": 200, "order_id": "A-17"})'

    feedback.record([{"trace_id": trace_id, "span_id": tool_span, "name": "flag_review", "author": "rev",
                      "kind": "label", "label": "false_positive", "value": {"detector": "tool_error"}}], store=store)
    assert export("stepwise", store=store, output=tmp_path / "none", eval_fraction=0)["splits"]["train"] == 0
    assert _rows(tmp_path / "flags")[0]["review"] == "confirmed"  # the earlier export is unchanged on disk
