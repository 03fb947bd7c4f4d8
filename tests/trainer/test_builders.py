"""The builders, the chat conversion, hygiene and the schema check, each on its own."""

from __future__ import annotations

import pytest

from tracemill.collector.feedback.json_schema import schema_errors
from tracemill.trainer import builders
from tracemill.trainer.chat import chat_messages, chat_tools, openai_messages, system_messages
from tracemill.trainer.rows import Row, clean, length_bias, split
from tracemill.trainer.spans import LLMSpan


def _span(span_id: str, prompt: list, output: list, *, trace_id: str = "t1", task: str = "task",
          failed: bool = False, start: int = 0) -> LLMSpan:
    return LLMSpan(trace_id=trace_id, span_id=span_id, start_ns=start, task_id=task, conversation_id="",
                   failed=failed, prompt=prompt, output=output, tools=[])


def _say(text: str, role: str = "assistant") -> list[dict]:
    return [{"role": role, "content": text}]


def test_genai_parts_become_chat_template_messages_with_named_tool_results():
    genai = [
        {"role": "user", "parts": [{"type": "text", "content": "Refund "}, {"type": "text", "content": "A-17"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"id": 1}},
                                        {"type": "tool_call", "id": "c2", "name": "price", "arguments": '{"x": [1]}'}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"ok": True}},
                                   {"type": "tool_call_response", "id": "c2", "response": "12 EUR"}]},
    ]
    assert chat_messages(genai) == [
        {"role": "user", "content": "Refund A-17"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": {"id": 1}}},
            {"id": "c2", "type": "function", "function": {"name": "price", "arguments": {"x": [1]}}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "lookup", "content": '{"ok":true}'},
        {"role": "tool", "tool_call_id": "c2", "name": "price", "content": "12 EUR"},
    ]
    assert system_messages([{"type": "text", "content": "Be brief."}]) == [{"role": "system", "content": "Be brief."}]
    assert system_messages(None) == []
    assert openai_messages(chat_messages(genai))[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"id": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "price", "arguments": '{"x": [1]}'}}]}


def test_tool_definitions_of_both_shapes_become_chat_template_tools():
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    flat = {"type": "function", "name": "search", "description": "Search.", "parameters": schema}
    nested = {"type": "function", "function": {"name": "search", "description": "Search.", "parameters": schema}}
    assert chat_tools([flat]) == chat_tools([nested]) == [nested]
    assert chat_tools([{"type": "function", "name": "now"}]) == [{"type": "function", "function": {
        "name": "now", "description": "", "parameters": {"type": "object", "properties": {}}}}]


def test_correction_row_keeps_prompt_and_original_output():
    span = _span("s1", _say("hi", "user"), _say("wrong"))
    row = builders.dpo_from_correction(span, {"output": "right", "tool_calls": [
        {"id": "c", "name": "refund", "arguments": {"amount": 2}}]})
    assert row["chosen"] == [{"role": "assistant", "content": "right", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "refund", "arguments": {"amount": 2}}}]}]
    assert (row["prompt"], row["rejected"], row["source"]) == (span.prompt, span.output, "correction")


def test_outcome_contrast_is_the_first_step_answered_differently_from_an_identical_prefix():
    good = [_span("g0", _say("q", "user"), _say("look")), _span("g1", _say("q+r", "user"), _say("right"))]
    bad = [_span("b0", _say("q", "user"), _say("look"), trace_id="t2"),
           _span("b1", _say("q+r", "user"), _say("wrong"), trace_id="t2")]
    row = builders.dpo_from_outcome_contrast(good, bad)
    assert (row["chosen"], row["rejected"], row["span_id"], row["source"]) == (
        _say("right"), _say("wrong"), "b1", "outcome_contrast")
    parted = [bad[0], _span("b1", _say("other tool result", "user"), _say("wrong"), trace_id="t2")]
    assert builders.dpo_from_outcome_contrast(good, parted) is None  # the prompts part before the answers do
    assert builders.dpo_from_outcome_contrast(good, good) is None


def test_judgements_past_the_thresholds_only():
    def judge(kind, label="", score=None, name="q"):
        return builders.judgement_label({"kind": kind, "label": label, "score": score, "name": name},
                                        good_at=0.7, bad_at=0.3)

    assert [judge("label", "thumbs_up"), judge("label", "Incorrect"), judge("label", "meh")] == [True, False, None]
    assert [judge("score", score=0.7), judge("score", score=0.3), judge("score", score=0.5)] == [True, False, None]
    assert judge("label", "confirmed", name="flag_review") is None


def test_stepwise_labels_the_steps_before_the_decisive_one_good():
    steps = [_span(f"s{i}", _say("task", "user"), _say(f"step {i}")) for i in range(4)]
    row = builders.stepwise_from_steps(steps, 2, "correction")
    assert row["completions"] == ["step 0", "step 1", "step 2"] and row["labels"] == [True, True, False]
    assert row["prompt"] == "user: task" and row["span_id"] == "s2"


def test_sft_skips_a_run_whose_last_call_failed():
    ok = [_span("s0", _say("q", "user"), _say("a"))]
    assert builders.sft_from_trace(ok, "outcome")["messages"] == _say("q", "user") + _say("a")
    assert builders.sft_from_trace([_span("s0", _say("q", "user"), _say("a"), failed=True)], "outcome") is None


def _row(chosen, rejected, group="g", trace="t"):
    data = {"prompt": _say("q", "user"), "chosen": _say(chosen), "rejected": _say(rejected), "tools": [],
            "source": "correction", "trace_id": trace, "span_id": "s"}
    return Row(data, "correction", trace, "s", group)


def test_hygiene_drops_no_op_pairs_and_duplicates_across_traces():
    rows, dropped = clean("dpo", [_row("a", "a"), _row("a", "b"), _row("a", "b", trace="other"), _row("c", "b")])
    assert [row.data["chosen"][0]["content"] for row in rows] == ["a", "c"]
    assert dropped == {"chosen_equals_rejected": 1, "duplicate": 1}
    assert rows[0].hash != rows[1].hash and len(rows[0].hash) == 64
    bias = length_bias([_row("long answer", "no"), _row("x", "yy")])
    assert bias["chosen_longer_fraction"] == 0.5 and bias["chosen_mean_bytes"] > bias["rejected_mean_bytes"]


def test_split_keeps_each_group_on_one_side_and_repeats_with_the_seed():
    rows = [_row(str(i), "r", group=f"task-{i % 10}") for i in range(50)]
    train, held_out = split(rows, eval_fraction=0.2, seed=7)
    assert {r.group for r in train}.isdisjoint({r.group for r in held_out})
    assert len({r.group for r in held_out}) == 2 and len(train) + len(held_out) == 50
    again = split(rows, eval_fraction=0.2, seed=7)[1]
    assert [r.data for r in again] == [r.data for r in held_out]
    assert {r.group for r in split(rows, eval_fraction=0.2, seed=8)[1]} != {r.group for r in held_out}
    assert split(rows[:1], eval_fraction=0.5, seed=0) == (rows[:1], [])


@pytest.mark.parametrize(
    ("value", "schema", "errors"),
    [
        ({"a": 1}, {"type": "object", "properties": {"a": {"type": "integer"}}}, []),
        ({"a": 1.0}, {"type": "object", "properties": {"a": {"type": "integer"}}}, []),
        ({"a": True}, {"properties": {"a": {"type": "number"}}}, ["arguments.a: True is not of type 'number'"]),
        ({}, {"required": ["a", "b"]}, ["arguments: 'a' is a required property",
                                        "arguments: 'b' is a required property"]),
        ({"x": [1, "2"]}, {"properties": {"x": {"type": "array", "items": {"type": "integer"}}}},
         ["arguments.x[1]: '2' is not of type 'integer'"]),
        ({"x": 1}, {"properties": {}, "additionalProperties": {"type": "string"}}, [
            "arguments.x: 1 is not of type 'string'"]),
        ({"x": None}, {"properties": {"x": {"type": ["string", "null"]}}}, []),
        ({"x": 3}, {"properties": {"x": {"anyOf": [{"type": "string"}, {"const": 4}]}}},
         ["arguments.x: 3 is not valid under any of the given schemas"]),
        ("text", {"type": "object"}, ["arguments: 'text' is not of type 'object'"]),
        ({"x": 1}, {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
         ["arguments.x: 1 is not of type 'string'"]),
        ({"when": "yesterday"}, {"properties": {"when": {"type": "string", "format": "date"}}},
         ["arguments.when: 'yesterday' is not a 'date'"]),
        # the draft the schema names: draft 4's boolean exclusiveMaximum
        ({"n": 5}, {"$schema": "http://json-schema.org/draft-04/schema#",
                    "properties": {"n": {"maximum": 5, "exclusiveMaximum": True}}},
         ["arguments.n: 5 is greater than or equal to the maximum of 5"]),
        # an invalid schema refuses nothing
        ({"n": 5}, {"type": "object", "properties": {"n": {"type": "nonsense"}}}, []),
    ],
)
def test_schema_errors_name_the_place_in_the_arguments(value, schema, errors):
    assert schema_errors(value, schema) == errors
