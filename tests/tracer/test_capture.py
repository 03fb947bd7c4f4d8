"""Captured payloads: safe JSON for any value, secrets masked, budgets kept with valid JSON."""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid

import pytest

import tracemill
from tracemill.tracer.capture import encode_json, fit_json
from tracemill.tracer.redaction import MASK, Redactor


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Unprintable:
    def __repr__(self):
        raise RuntimeError("no repr")


def test_encode_json_handles_common_and_unknown_types():
    np = pytest.importorskip("numpy")
    value = {
        "point": Point(1, 2), "when": datetime.date(2026, 1, 2), "id": uuid.UUID(int=1), "raw": b"hi",
        "tags": {"a"}, "np_float": np.float32(1.5), "np_int": np.int64(7), "array": np.arange(3),
        "obj": Unprintable(), 5: "int key",
    }
    decoded = json.loads(encode_json(value))
    assert decoded["point"] == {"x": 1, "y": 2}
    assert decoded["when"] == "2026-01-02"
    assert decoded["id"] == "00000000-0000-0000-0000-000000000001"
    assert decoded["raw"] == "aGk="
    assert decoded["tags"] == ["a"]
    assert decoded["np_float"] == 1.5 and decoded["np_int"] == 7 and decoded["array"] == [0, 1, 2]
    assert decoded["obj"] == "<Unprintable object>"
    assert decoded["5"] == "int key"


def test_encode_json_handles_pydantic_models_and_object_keys():
    pydantic = pytest.importorskip("pydantic")

    class Query(pydantic.BaseModel):
        text: str
        k: int = 3

    assert json.loads(encode_json({"q": Query(text="x")})) == {"q": {"text": "x", "k": 3}}
    assert json.loads(encode_json({(1, 2): "tuple key"})) == {"(1, 2)": "tuple key"}


@pytest.mark.parametrize("budget", [64, 200, 1000, 5000])
def test_fit_json_keeps_valid_json_within_budget_with_marker(budget):
    payload = encode_json({"messages": [{"role": "user", "content": "x" * 3000}] * 20, "n": 1})
    fitted = fit_json(payload, budget)
    assert len(fitted.encode()) <= budget
    decoded = json.loads(fitted)
    assert "truncated" in fitted
    assert isinstance(decoded, dict)


def test_fit_json_leaves_small_payloads_untouched():
    payload = encode_json({"a": [1, 2, 3]})
    assert fit_json(payload, 1000) is payload


def test_fit_json_counts_utf8_bytes_not_characters():
    payload = encode_json("é" * 1000)
    fitted = fit_json(payload, 500)
    assert len(fitted.encode()) <= 500
    assert json.loads(fitted).startswith("é")


def test_oversized_argument_is_truncated_on_the_span(spans):
    spans.reinit(max_payload_bytes=256)

    @tracemill.step(name="big")
    def big(text):
        return text

    big("y" * 10_000)
    attributes = spans.named("big").attributes
    for key in ("tracemill.input", "tracemill.output"):
        assert len(attributes[key].encode()) <= 256
        assert "truncated" in attributes[key]
        json.loads(attributes[key])


def test_sensitive_keys_are_always_masked_but_similar_names_are_not():
    redactor = Redactor()
    text = encode_json({"api_key": "k1", "Authorization": "Bearer abc", "nested": {"password": 5, "token": None},
                        "max_tokens": 100, "input_tokens": 3, "tokenizer": "bpe"})
    decoded = json.loads(redactor.redact_json(text))
    assert decoded["api_key"] == decoded["Authorization"] == MASK
    assert decoded["nested"] == {"password": MASK, "token": MASK}
    assert decoded["max_tokens"] == 100 and decoded["input_tokens"] == 3 and decoded["tokenizer"] == "bpe"


def test_default_patterns_mask_openai_keys_and_bearer_tokens_in_free_text():
    text = encode_json({"log": "used sk-abcdefghijklmnopqrstuv and Bearer xyz.123456"})
    decoded = json.loads(Redactor().redact_json(text))
    assert decoded["log"] == f"used {MASK} and {MASK}"


def test_configured_patterns_keys_and_callback_apply_to_spans(spans):
    def drop_emails(attribute, value):
        if isinstance(value, dict) and "email" in value:
            return {**value, "email": "<email>"}
        return value

    spans.reinit(redact_keys=["ssn"], redact_patterns=[r"\d{4}-\d{4}"],
                   redact=drop_emails)

    @tracemill.step(name="person")
    def person(email, ssn, note, api_key):
        return "ok"

    person("a@b.c", "123", "card 1234-5678", "sk-live")
    captured = json.loads(spans.named("person").attributes["tracemill.input"])
    assert captured == {"email": "<email>", "ssn": MASK, "note": f"card {MASK}", "api_key": MASK}


def test_pattern_matching_across_json_syntax_still_yields_valid_json():
    redactor = Redactor(patterns=[r'a","b'])
    out = redactor.redact_json(encode_json(["a", "b", 'xa","by']))
    assert json.loads(out) == ["a", "b", f"x{MASK}y"]


def test_failing_redaction_callback_drops_the_payload_instead_of_leaking_it(spans):
    def broken(attribute, value):
        raise RuntimeError("bug in user callback")

    spans.reinit(redact=broken)

    @tracemill.step(name="guarded")
    def guarded(password_hint):
        return "secret answer"

    assert guarded("hint") == "secret answer"
    attributes = spans.named("guarded").attributes
    assert json.loads(attributes["tracemill.input"]) == MASK
    assert json.loads(attributes["tracemill.output"]) == MASK


def test_capture_content_off_records_no_payloads(spans):
    spans.reinit(capture_content=False)

    @tracemill.tool
    def lookup(q):
        return "answer"

    with tracemill.llm_call(provider="openai", model="m", input_messages="hello") as call:
        call.record_output(content="hi", input_tokens=1, output_tokens=1)
    lookup("q")
    llm = spans.named("chat m").attributes
    assert "gen_ai.input.messages" not in llm and "gen_ai.output.messages" not in llm
    assert llm["gen_ai.usage.input_tokens"] == 1
    tool = spans.named("execute_tool lookup").attributes
    assert "gen_ai.tool.call.arguments" not in tool and "gen_ai.tool.call.result" not in tool


def test_whole_value_under_a_sensitive_key_is_masked_whatever_its_type():
    text = encode_json({"headers": {"Authorization": ["Basic dXNlcjpodW50ZXIy"]},
                        "login": {"password": {"value": "hunter2"}}, "api_key": ["x-live-123"], "keep": {"a": 1}})
    assert json.loads(Redactor().redact_json(text)) == {
        "headers": {"Authorization": MASK}, "login": {"password": MASK}, "api_key": MASK, "keep": {"a": 1}}


def test_secrets_nested_in_tool_arguments_do_not_reach_the_span(spans):
    @tracemill.tool
    def call_api(headers, body):
        return "ok"

    call_api({"Authorization": ["Basic dXNlcjpodW50ZXIy"]}, {"password": {"value": "hunter2"}, "q": "x"})
    captured = spans.named("execute_tool call_api").attributes["gen_ai.tool.call.arguments"]
    assert "hunter2" not in captured and "dXNlcjpodW50ZXIy" not in captured
    assert json.loads(captured) == {"headers": {"Authorization": MASK}, "body": {"password": MASK, "q": "x"}}


def test_capture_content_off_records_no_decisions_or_tool_definitions(spans):
    spans.reinit(capture_content=False)

    @tracemill.step(decision=True, options=["search", "answer"], name="route")
    def route(question):
        tracemill.set_decision(choice={"secret_plan": "hello"}, reason="because user said hello")
        return "search"

    route("q")
    with tracemill.llm_call(provider="openai", model="m", tool_definitions=[{"type": "function"}]):
        pass
    route_attributes = spans.named("route").attributes
    assert route_attributes["tracemill.step.kind"] == "decision"
    assert not [k for k in route_attributes if k.startswith("tracemill.decision.")]
    assert "gen_ai.tool.definitions" not in spans.named("chat m").attributes


def test_run_metadata_is_redacted(spans):
    with tracemill.run("r", metadata={"api_key": "sk-abcdefghijklmnopqrstu", "note": "Bearer abcdefgh12345",
                                      "team": "search", "retries": 2}):
        pass
    attributes = spans.named("invoke_workflow r").attributes
    assert attributes["tracemill.metadata.api_key"] == MASK
    assert attributes["tracemill.metadata.note"] == MASK
    assert attributes["tracemill.metadata.team"] == "search"
    assert attributes["tracemill.metadata.retries"] == 2
