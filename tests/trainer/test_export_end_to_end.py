"""From traced runs to TRL-ready files, through the public API: run the agent, give feedback with
``tracemill.feedback``, export with ``tracemill.trainer.export``, and check every field of the rows
against the spans the store holds."""

from __future__ import annotations

import json

import datasets
import pytest

import tracemill.feedback as feedback
from tracemill.trainer import export

from .conftest import BAD, GOOD, SYSTEM, TOOLS


def _load(directory, name="train"):
    rows = [json.loads(line) for line in (directory / f"{name}.jsonl").read_text().splitlines()]
    return rows


def _all_rows(directory):
    return _load(directory, "train") + _load(directory, "eval")


def _expected_prompt(span) -> list[dict]:
    """The chat messages the stored GenAI input of ``span`` stands for, derived part by part."""
    out = [{"role": "system", "content": "".join(p["content"] for p in span["system_instructions"])}]
    names = {}
    for message in span["input.messages"]:
        calls = [p for p in message["parts"] if p["type"] == "tool_call"]
        results = [p for p in message["parts"] if p["type"] == "tool_call_response"]
        for part in results:
            out.append({"role": "tool", "tool_call_id": part["id"], "name": names[part["id"]],
                        "content": part["response"]})
        if results:
            continue
        chat = {"role": message["role"], "content": "".join(p["content"] for p in message["parts"]
                                                            if p["type"] == "text")}
        if calls:
            chat["tool_calls"] = [{"id": p["id"], "type": "function",
                                   "function": {"name": p["name"], "arguments": p["arguments"]}} for p in calls]
            names.update((p["id"], p["name"]) for p in calls)
        out.append(chat)
    return out


def test_correction_becomes_a_dpo_row_holding_exactly_what_the_model_saw(agent, store, tmp_path):
    trace_id = agent.run("refund-A17", BAD)
    steps = agent.llm_spans(trace_id)
    wrong = steps[1]  # the refund of 200
    fixed = [{"id": "call_2", "name": "refund", "arguments": {"order_id": "A-17", "amount": 20, "reason": "damaged"}}]
    feedback.correct(trace_id[:8], wrong["span_id"], tool_calls=fixed, author="alice", store=store)

    manifest = export("dpo", store=store, output=tmp_path / "dpo", eval_fraction=0)
    (row,) = _all_rows(tmp_path / "dpo")
    assert manifest["counts"] == {"correction": 1} and manifest["splits"] == {"train": 1, "eval": 0}
    # The row comes from the corrected span's configuration version.
    (version,) = store.query("SELECT SpanAttributes['tracemill.config.version'] FROM otel_traces "
                             "WHERE SpanId = {s:String}", {"s": wrong["span_id"]}).result_rows[0]
    assert len(version) == 12 and manifest["config_versions"] == {version: 1}
    assert (row["source"], row["trace_id"], row["span_id"]) == ("correction", trace_id, wrong["span_id"])

    # The prompt is the span's input: system instructions, the question, the earlier tool call and its result.
    assert row["prompt"] == _expected_prompt(wrong)
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "tool"]
    assert row["prompt"][0]["content"] == SYSTEM
    assert row["prompt"][2]["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": {"order_id": "A-17"}}
    assert json.loads(row["prompt"][3]["content"]) == {"order_id": "A-17", "status": "damaged", "paid": 20}
    # Tools: the recorded definitions (both shapes) in the chat-template shape, schemas untouched.
    assert [t["function"]["name"] for t in row["tools"]] == ["lookup_order", "refund"]
    assert row["tools"][0]["function"]["parameters"] == TOOLS[0]["function"]["parameters"]
    assert row["tools"][1]["function"]["parameters"] == TOOLS[1]["parameters"]
    assert row["chosen"] == [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_2", "type": "function", "function": {"name": "refund", "arguments": fixed[0]["arguments"]}}]}]
    (stored_output,) = wrong["output.messages"]
    (call_part,) = [p for p in stored_output["parts"] if p["type"] == "tool_call"]
    assert row["rejected"] == [{"role": "assistant", "content": "", "tool_calls": [
        {"id": call_part["id"], "type": "function",
         "function": {"name": "refund", "arguments": {"order_id": "A-17", "amount": 200}}}]}]


def test_preference_outcome_contrast_and_files_load_back_exactly(agent, store, tmp_path):
    good = agent.run("refund-A17", GOOD)
    bad = agent.run("refund-A17", BAD)
    other = agent.run("refund-B2", GOOD, question="Order B-2 is late, refund it?")
    feedback.outcome(good, success=True, author="ci", store=store)
    feedback.outcome(bad, success=False, author="ci", store=store)
    feedback.outcome(other, success=True, author="ci", store=store)
    good_steps, bad_steps = agent.llm_spans(good), agent.llm_spans(bad)
    feedback.prefer(good, good_steps[1]["span_id"], bad_steps[1]["span_id"], worse_trace_id=bad, author="bob",
                    store=store)

    manifest = export("dpo", store=store, output=tmp_path / "dpo", eval_fraction=0.5, seed=3)
    assert manifest["splits"] == {"train": 1, "eval": 0}  # one task: it cannot be on both sides
    rows = _all_rows(tmp_path / "dpo")
    by_source = {row["source"]: row for row in rows}
    # The preference and the contrast name the same step and make the same pair: the duplicate is dropped.
    assert manifest["dropped"]["duplicate"] == 1
    assert set(by_source) == {"preference"}
    assert by_source["preference"]["chosen"][0]["tool_calls"][0]["function"]["arguments"]["amount"] == 20
    assert by_source["preference"]["rejected"][0]["tool_calls"][0]["function"]["arguments"]["amount"] == 200

    contrast = export("dpo", store=store, output=tmp_path / "contrast", resolve=None, eval_fraction=0)
    assert contrast["counts"] == {"preference": 1}
    feedback.delete(good, name=f"preference:{bad_steps[1]['span_id']}", span_id=good_steps[1]["span_id"],
                    author="bob", store=store)
    contrast = export("dpo", store=store, output=tmp_path / "contrast", eval_fraction=0)
    (row,) = _all_rows(tmp_path / "contrast")
    assert contrast["counts"] == {"outcome_contrast": 1}
    assert (row["trace_id"], row["span_id"]) == (bad, bad_steps[1]["span_id"])
    assert row["prompt"] == _expected_prompt(bad_steps[1])

    for name in ("train", "eval"):
        written = _load(tmp_path / "dpo", name)
        if not written:  # datasets refuses to load a split with no rows; the file still has the train schema
            import pyarrow.parquet as pq

            table = pq.read_table(tmp_path / "dpo" / f"{name}.parquet")
            assert table.num_rows == 0 and table.schema == pq.read_table(tmp_path / "dpo" / "train.parquet").schema
            continue
        for kind in ("json", "parquet"):
            ext = "jsonl" if kind == "json" else "parquet"
            loaded = datasets.load_dataset(kind, data_files=str(tmp_path / "dpo" / f"{name}.{ext}"), split="train")
            assert [dict(r) for r in loaded] == written


def test_kto_sft_openai_and_stepwise_rows(agent, store, tmp_path):
    good = agent.run("refund-A17", GOOD)
    bad = agent.run("refund-A17", BAD)
    steps = agent.llm_spans(bad)
    feedback.label(bad, "thumbs_down", span_id=steps[1]["span_id"], author="alice", store=store)
    feedback.score(good, 0.9, author="alice", store=store)  # on the whole trace: its last answer
    feedback.outcome(good, success=True, author="ci", store=store)
    feedback.outcome(bad, success=False, author="ci", store=store)

    export("kto", store=store, output=tmp_path / "kto", eval_fraction=0)
    kto = {row["source"]: row for row in _all_rows(tmp_path / "kto")}
    assert kto["label"]["label"] is False and kto["label"]["span_id"] == steps[1]["span_id"]
    assert kto["label"]["completion"][0]["tool_calls"][0]["function"]["arguments"] == {"order_id": "A-17",
                                                                                         "amount": 200}
    assert kto["score"]["label"] is True
    assert kto["score"]["completion"] == [{"role": "assistant", "content": "Your order A-17 was refunded 20 EUR."}]

    export("sft", store=store, output=tmp_path / "sft", eval_fraction=0)
    (sft,) = _all_rows(tmp_path / "sft")
    assert sft["trace_id"] == good and sft["source"] == "outcome"
    assert [m["role"] for m in sft["messages"]] == ["system", "user", "assistant", "tool", "assistant", "tool",
                                                    "assistant"]
    assert sft["messages"][-1]["content"] == GOOD[-1]["content"]

    export("openai", store=store, output=tmp_path / "openai", eval_fraction=0)
    (line,) = _all_rows(tmp_path / "openai")
    assert set(line) == {"messages", "tools"}
    call = line["messages"][2]["tool_calls"][0]
    assert call["function"] == {"name": "lookup_order", "arguments": '{"order_id": "A-17"}'}
    assert line["messages"][2]["content"] is None
    assert line["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": sft["messages"][3]["content"]}

    export("stepwise", store=store, output=tmp_path / "stepwise", eval_fraction=0)
    (step,) = _all_rows(tmp_path / "stepwise")
    assert step["source"] == "outcome_contrast" and step["labels"] == [True, False]
    assert step["completions"] == ['lookup_order({"order_id": "A-17"})', 'refund({"amount": 200, "order_id": "A-17"})']
    assert step["prompt"].startswith(f"system: {SYSTEM}\nuser: My order A-17")


@pytest.mark.parametrize("kind", ["dpo", "kto", "sft"])
def test_trl_prepares_the_exported_files_unchanged(agent, store, tmp_path, kind):
    from .trl_check import prepare_with_trl

    good = agent.run("refund-A17", GOOD)
    bad = agent.run("refund-A17", BAD)
    steps = agent.llm_spans(bad)
    feedback.outcome(good, success=True, author="ci", store=store)
    feedback.outcome(bad, success=False, author="ci", store=store)
    feedback.correct(bad, steps[2]["span_id"], output="Your order A-17 was refunded 20 EUR.", author="a", store=store)
    feedback.label(bad, "bad", span_id=steps[1]["span_id"], author="a", store=store)
    feedback.label(good, "good", span_id=agent.llm_spans(good)[1]["span_id"], author="a", store=store)
    feedback.outcome(agent.run("refund-B2", GOOD, question="Order B-2 is late."), success=True, author="ci",
                     store=store)
    export(kind, store=store, output=tmp_path / kind, eval_fraction=0)
    rows = _load(tmp_path / kind)
    prepared = prepare_with_trl(kind, tmp_path / kind / "train.jsonl", tmp_path / "model")
    assert len(prepared) == len(rows) >= 2
    for text in prepared:  # the chat template saw the tools, the system prompt and the tool calls of the rows
        assert text.startswith('<|begin|><|tools|>{"name": "lookup_order"')
        assert f"<|system|>{SYSTEM}<|end|>" in text
        assert '<|tool_call|>{"name": "lookup_order", "arguments": {"order_id": "A-17"}}' in text


def test_an_outcome_stored_without_its_score_still_counts(agent, store, tmp_path):
    from datetime import datetime, timezone

    trace_id = agent.run("refund-A17", GOOD)
    now = datetime.now(timezone.utc)
    # As a writer from before the outcome convention carried Label/Score would have stored it.
    store.insert("tracemill_feedback", [[trace_id, "", "outcome", "legacy", "outcome", '{"success": true}', None, "",
                                         "", now, now, 0]],
                 ["TraceId", "SpanId", "Name", "Author", "Kind", "Value", "Score", "Label", "Comment", "CreatedAt",
                  "UpdatedAt", "IsDeleted"])
    manifest = export("sft", store=store, output=tmp_path / "sft", eval_fraction=0)
    assert manifest["counts"] == {"outcome": 1}


SEARCH = [{"type": "function", "function": {"name": "search", "description": "Search the help center.",
           "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                          "required": ["query"]}}}]


def test_rows_with_different_tool_arguments_and_schemas_load_back_exactly(agent, store, tmp_path):
    refund_run = agent.run("refund-A17", BAD)
    search_run = agent.run("help", [{"content": "I do not know."}], question="How do refunds work?", tools=SEARCH)
    feedback.correct(refund_run, agent.llm_spans(refund_run)[1]["span_id"], author="a", store=store, tool_calls=[
        {"name": "refund", "arguments": {"order_id": "A-17", "amount": 20, "reason": "damaged"}}])
    feedback.correct(search_run, agent.llm_spans(search_run)[0]["span_id"], author="a", store=store,
                     output="Let me look that up.", tool_calls=[{"name": "search", "arguments": {"query": "refunds"}}])
    for kind in ("dpo", "sft", "kto"):
        export(kind, store=store, output=tmp_path / kind, eval_fraction=0)
    written = _load(tmp_path / "dpo")
    assert len(written) == 2
    for ext, loader in (("jsonl", "json"), ("parquet", "parquet")):
        loaded = datasets.load_dataset(loader, data_files=str(tmp_path / "dpo" / f"train.{ext}"), split="train")
        assert [dict(row) for row in loaded] == written
    # What the exact round trip guards against: building the dataset from Python dicts merges keys across rows.
    merged = datasets.Dataset.from_list(written)
    assert [dict(row) for row in merged] != written
