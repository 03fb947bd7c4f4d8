"""Configuration versions on LLM spans: a content hash of system text, tools, model and parameters."""

from __future__ import annotations

import tracemill
from tracemill.tracer.versions.config_version import CONFIG_VERSION, attributes_content, run_version, version_of

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _version(spans, **overrides) -> str:
    arguments = {"provider": "openai", "model": "gpt-4o", "system_instructions": "Be brief.",
                 "tool_definitions": [WEATHER], "temperature": 0.2, "input_messages": "weather in Oslo?"}
    arguments.update(overrides)
    spans.clear()
    with tracemill.llm_call(**arguments):
        pass
    (span,) = spans.finished
    return span.attributes[CONFIG_VERSION]


def test_same_configuration_gives_same_version_whatever_the_user_message(spans):
    assert _version(spans) == _version(spans, input_messages="and in Bergen?")
    assert len(_version(spans)) == 12


def test_system_prompt_change_gives_new_version(spans):
    assert _version(spans) != _version(spans, system_instructions="Be thorough.")


def test_tool_schema_change_gives_new_version(spans):
    changed = {**WEATHER, "parameters": {"type": "object", "properties": {"city": {"type": "integer"}}}}
    assert _version(spans) != _version(spans, tool_definitions=[changed])


def test_model_and_parameter_changes_give_new_versions(spans):
    base = _version(spans)
    assert base != _version(spans, model="gpt-4o-mini")
    assert base != _version(spans, temperature=0.7)


def test_system_message_and_system_instructions_are_the_same_configuration(spans):
    apart = _version(spans, system_instructions="Be brief.", input_messages=[{"role": "user", "content": "hi"}])
    inline = _version(spans, system_instructions=None, input_messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert apart == inline


def test_version_recorded_with_content_capture_off(spans):
    on = _version(spans)
    spans.reinit(capture_content=False)
    off = _version(spans)
    assert off == on
    assert "gen_ai.system_instructions" not in spans.finished[0].attributes


def test_span_attributes_give_the_tracer_version(spans):
    version = _version(spans)
    assert version_of(attributes_content(dict(spans.finished[0].attributes))) == version


def test_prompt_named_by_argument_or_context(spans):
    with tracemill.prompt("support-triage", 3), tracemill.llm_call(provider="openai", model="m"):
        pass
    with tracemill.llm_call(provider="openai", model="m", prompt_name="explicit", prompt_version="v9"):
        pass
    first, second = spans.finished
    named = [(s.attributes["gen_ai.prompt.name"], s.attributes["gen_ai.prompt.version"]) for s in (first, second)]
    assert named == [("support-triage", "3"), ("explicit", "v9")]


def test_run_version_combines_decisions_and_agent_version():
    assert run_version(["b", "a", "a"], "1.0") == run_version(["a", "b"], "1.0")
    assert run_version(["a", "b"], "1.0") != run_version(["a", "b"], "1.1")
    assert run_version(["a"], "1.0") != run_version(["a", "c"], "1.0")


def test_candidate_version_is_what_traced_calls_of_that_candidate_record(spans):
    from tracemill.tracer.versions.config_version import candidate_version

    recorded = _version(spans)
    assert candidate_version(provider="openai", model="gpt-4o", system_instructions="Be brief.", tools=[WEATHER],
                             params={"temperature": 0.2}) == recorded
    assert candidate_version(provider="openai", model="my-adapter", system_instructions="Be brief.",
                             tools=[WEATHER], params={"temperature": 0.2}) != recorded
