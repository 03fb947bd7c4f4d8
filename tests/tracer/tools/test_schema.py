"""Tool spans carry the tool's parameter schema (never the call's arguments) when it is known."""

from __future__ import annotations

import json
from enum import Enum
from typing import Literal

import tracemill
from tracemill.tracer import semconv
from tracemill.tracer.tools.schema import definition_parameters, signature_schema


class Unit(Enum):
    C = "celsius"
    F = "fahrenheit"


def _parameters(spans, name: str) -> dict | None:
    raw = spans.named(f"execute_tool {name}").attributes.get(semconv.TOOL_PARAMETERS)
    return None if raw is None else json.loads(raw)


def test_decorated_tool_gets_the_schema_of_its_signature_without_defaults(spans):
    @tracemill.tool
    def forecast(city: str, days: int = 3, unit: Unit = Unit.C, tags: list[str] | None = None,
                 mode: Literal["fast", "exact"] = "fast", token: str = "sk-default-secret-value") -> str:
        return "ok"

    forecast("Rome", days=2)
    schema = _parameters(spans, "forecast")
    assert schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"},
            "unit": {"enum": ["celsius", "fahrenheit"]}, "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["fast", "exact"]}, "token": {"type": "string"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert "sk-default" not in json.dumps(schema)
    assert json.loads(spans.named("execute_tool forecast").attributes[semconv.TOOL_CALL_ARGUMENTS]) == {
        "city": "Rome", "days": 2}


def test_method_tools_leave_out_self_and_keyword_catch_alls_allow_more(spans):
    class Shop:
        @tracemill.tool
        def search(self, query, **filters) -> list:
            return []

    Shop().search("shoes", color="red")
    assert _parameters(spans, "search") == {"type": "object", "properties": {"query": {}}, "required": ["query"]}


def test_the_schema_the_model_was_given_wins_over_the_signature(spans):
    given = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
             "required": ["city"]}

    @tracemill.tool
    def weather(city):
        return "sunny"

    with tracemill.run("r"):
        with tracemill.llm_call(provider="openai", model="m", input_messages="hi",
                                tool_definitions=[{"type": "function",
                                                   "function": {"name": "weather", "parameters": given}}]) as call:
            call.record_output(tool_calls=[{"id": "c1", "name": "weather", "arguments": {"city": "Rome"}}])
        weather("Rome")
        with tracemill.tool_call("lookup", call_id="c2", arguments={"q": 1}) as manual:
            manual.record_result("x")
    assert _parameters(spans, "weather") == given
    assert _parameters(spans, "lookup") is None  # no definition and no signature: absent


def test_manual_tool_call_takes_the_flat_genai_definition(spans):
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    with tracemill.run("r"):
        with tracemill.llm_call(provider="openai", model="m", input_messages="hi",
                                tool_definitions=[{"type": "function", "name": "fetch", "parameters": schema}]) as call:
            call.record_output(tool_calls=[{"id": "c9", "name": "fetch", "arguments": {"id": 3}}])
        with tracemill.tool_call("fetch", call_id="c9", arguments={"id": 3}) as manual:
            manual.record_result({"ok": True})
    assert _parameters(spans, "fetch") == schema


def test_openinference_tool_parameters_is_the_schema_and_absent_when_unknown(spans):
    spans.reinit(openinference=True)

    @tracemill.tool
    def add(a: int, b: int) -> int:
        return a + b

    add(1, 2)
    with tracemill.tool_call("unknown", arguments={"x": 1}) as manual:
        manual.record_result(1)
    tool = spans.named("execute_tool add").attributes
    assert json.loads(tool["tool.parameters"])["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    assert json.loads(tool["input.value"]) == {"a": 1, "b": 2}
    unknown = spans.named("execute_tool unknown").attributes
    assert "tool.parameters" not in unknown and json.loads(unknown["input.value"]) == {"x": 1}


def test_unreadable_signatures_give_no_schema_and_definitions_are_matched_by_name():
    class Opaque:
        @property
        def __signature__(self):
            raise ValueError("no signature")

        def __call__(self):
            return None

    assert signature_schema(Opaque(), drop_first=False) is None
    assert json.loads(signature_schema(lambda x: x, drop_first=False) or "") == {
        "type": "object", "properties": {"x": {}}, "required": ["x"], "additionalProperties": False}
    assert definition_parameters([{"function": {"name": "a", "parameters": {"type": "object"}}}], "b") is None
    assert definition_parameters(["junk", {"name": "b", "input_schema": {"type": "object"}}], "b") == {
        "type": "object"}
