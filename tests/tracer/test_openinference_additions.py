"""One test per item docs/backends.md lists as what the OpenInference mode adds to Phoenix's own
conversion of ``gen_ai.*``; each checks the values and that every name written is a convention name."""

from __future__ import annotations

import json

import tracemill

from .test_openinference import SPEC_ATTRIBUTES, SPEC_KINDS, _spec_names, openinference_keys


def _spec_only(attributes) -> dict:
    """The OpenInference attributes of a span, each name checked against the convention."""
    written = {k: attributes[k] for k in openinference_keys(attributes)}
    for key in written:
        assert set(_spec_names(key)) <= SPEC_ATTRIBUTES, key
    assert written.get("openinference.span.kind") in SPEC_KINDS
    return written


@tracemill.tool
def weather(city: str, days: int = 1) -> dict:
    """Forecast for a city."""
    return {"city": city, "sky": "clear"}


@tracemill.step(kind="planning")
def plan(goal: str) -> str:
    return "ask the weather tool"


@tracemill.agent
def forecaster(question: str) -> str:
    plan(question)
    with tracemill.llm_call(provider="openai", model="gpt-4o", system_instructions="Be brief.",
                            input_messages=[{"role": "user", "content": question}]) as call:
        call.record_output(tool_calls=[{"id": "c7", "name": "weather", "arguments": {"city": "Oslo"}}],
                           response_model="gpt-4o-2024-08-06")
    weather("Oslo")
    return "Clear in Oslo."


def _run(spans):
    spans.reinit(openinference=True)
    with tracemill.run("forecast", user_id="u-42", metadata={"channel": "chat"}):
        forecaster("Weather in Oslo?")
    return {span.name: span for span in spans.finished}


def test_item_1_runs_and_steps_are_chain_spans(spans):
    by_name = _run(spans)
    assert _spec_only(by_name["invoke_workflow forecast"].attributes)["openinference.span.kind"] == "CHAIN"
    assert _spec_only(by_name["plan"].attributes)["openinference.span.kind"] == "CHAIN"


def test_item_2_the_root_agents_and_steps_have_input_and_output_values(spans):
    by_name = _run(spans)
    root = _spec_only(by_name["invoke_workflow forecast"].attributes)
    assert json.loads(root["input.value"]) == {"question": "Weather in Oslo?"}
    assert (root["output.value"], root["output.mime_type"]) == ("Clear in Oslo.", "text/plain")
    agent = _spec_only(by_name["invoke_agent forecaster"].attributes)
    assert agent["output.value"] == "Clear in Oslo."
    step = _spec_only(by_name["plan"].attributes)
    assert (json.loads(step["input.value"]), step["output.value"]) == ({"goal": "Weather in Oslo?"},
                                                                      "ask the weather tool")


def test_item_3_llm_values_are_the_openai_style_request_and_response_message(spans):
    llm = _spec_only(_run(spans)["chat gpt-4o"].attributes)
    assert json.loads(llm["input.value"]) == {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Oslo?"}]}
    assert json.loads(llm["output.value"]) == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c7", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]}


def test_item_4_tool_parameters_is_the_schema_and_the_arguments_are_the_input(spans):
    tool = _spec_only(_run(spans)["execute_tool weather"].attributes)
    assert json.loads(tool["tool.parameters"]) == {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"], "additionalProperties": False}
    assert json.loads(tool["input.value"]) == {"city": "Oslo"}
    assert (tool["tool.name"], tool["tool.description"], tool["tool.id"]) == ("weather", "Forecast for a city.", "c7")


def test_item_5_the_model_name_is_the_model_that_answered(spans):
    assert _spec_only(_run(spans)["chat gpt-4o"].attributes)["llm.model_name"] == "gpt-4o-2024-08-06"


def test_item_6_user_and_metadata_are_mapped(spans):
    attributes = _run(spans)["invoke_workflow forecast"].attributes
    assert attributes["user.id"] == "u-42"  # the same name in both conventions
    assert "user.id" in SPEC_ATTRIBUTES
    assert json.loads(_spec_only(attributes)["metadata"]) == {"channel": "chat"}


def test_item_7_the_resource_names_a_project_per_service(spans):
    resource = _run(spans)["chat gpt-4o"].resource.attributes
    assert resource["openinference.project.name"] == resource["service.name"] == "tracemill-tests"
