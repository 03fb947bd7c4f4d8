"""OpenInference attributes (``init(openinference=True)``), checked against the convention's names."""

from __future__ import annotations

import json
import re

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracemill
from tracemill.tracer.redaction import MASK
from tracemill.tracer.runtime import RUNTIME

SPEC_ATTRIBUTES = {
    # Reserved attributes of the OpenInference semantic conventions (spec/semantic_conventions.md of
    # Arize-ai/openinference), written out here so that a misspelt name fails this test.
    "openinference.span.kind", "input.value", "input.mime_type", "output.value", "output.mime_type",
    "llm.model_name", "llm.provider", "llm.input_messages", "llm.output_messages", "llm.invocation_parameters",
    "llm.tools", "llm.token_count.prompt", "llm.token_count.completion", "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read", "llm.token_count.completion_details.reasoning",
    "message.role", "message.content", "message.tool_calls", "message.tool_call_id", "tool_call.id",
    "tool_call.function.name", "tool_call.function.arguments", "tool.name", "tool.description", "tool.id",
    "tool.parameters", "tool.json_schema", "session.id", "user.id", "metadata",
}
SPEC_KINDS = {"LLM", "EMBEDDING", "CHAIN", "RETRIEVER", "RERANKER", "TOOL", "AGENT", "GUARDRAIL", "EVALUATOR",
              "PROMPT"}
_OWN_NAMESPACES = ("gen_ai.", "tracemill.", "error.", "server.", "user.id", "deployment.")


def _spec_names(key: str) -> list[str]:
    """The convention names a flattened key is made of: llm.input_messages.0.message.role → two names."""
    return [part.strip(".") for part in re.split(r"\.\d+\.", key)]


def openinference_keys(attributes) -> set[str]:
    return {k for k in attributes if not k.startswith(_OWN_NAMESPACES)}


CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "description": "a city"}},
               "required": ["city"]}


def _agent_run(exporter_spans):
    @tracemill.tool(description="Look up the weather.")
    def weather(city: str) -> dict:
        return {"city": city, "temp_c": 21}

    @tracemill.step(kind="planning")
    def plan(goal: str) -> str:
        return "call weather"

    @tracemill.agent
    def assistant(question: str) -> str:
        plan(question)
        with tracemill.llm_call(
            provider="openai", model="gpt-4o-mini", temperature=0.2,
            system_instructions="You are terse.",
            input_messages=[{"role": "user", "content": question}],
            tool_definitions=[{"type": "function", "function": {"name": "weather", "parameters": CITY_SCHEMA}}],
        ) as call:
            call.record_output(tool_calls=[{"id": "call_1", "name": "weather", "arguments": {"city": "Rome"}}],
                               response_model="gpt-4o-mini-2024-07-18", input_tokens=30, output_tokens=12)
        weather("Rome")
        return "21 C in Rome"

    with tracemill.run("support", task_id="t-1", conversation_id="conv-9", input={"ticket": 7},
                       attributes={"deployment.environment": "staging"}) as run:
        run.set_output(assistant("Weather in Rome?"))
    return {span.name: span for span in exporter_spans.finished}


def test_every_span_of_an_agent_run_gets_its_kind_and_input_output(spans):
    spans.reinit(openinference=True)
    by_name = _agent_run(spans)

    run = by_name["invoke_workflow support"].attributes
    assert run["openinference.span.kind"] == "CHAIN"
    assert json.loads(run["input.value"]) == {"ticket": 7} and run["input.mime_type"] == "application/json"
    assert run["output.value"] == "21 C in Rome" and run["output.mime_type"] == "text/plain"
    assert run["session.id"] == "conv-9"
    assert run["deployment.environment"] == "staging"

    agent = by_name["invoke_agent assistant"].attributes
    assert agent["openinference.span.kind"] == "AGENT"
    assert json.loads(agent["input.value"]) == {"question": "Weather in Rome?"}

    step = by_name["plan"].attributes
    assert (step["openinference.span.kind"], step["output.value"]) == ("CHAIN", "call weather")

    tool = by_name["execute_tool weather"].attributes
    assert tool["openinference.span.kind"] == "TOOL"
    assert (tool["tool.name"], tool["tool.description"], tool["tool.id"]) == ("weather", "Look up the weather.",
                                                                              "call_1")
    assert json.loads(tool["input.value"]) == {"city": "Rome"}  # the call's arguments
    assert json.loads(tool["tool.parameters"]) == CITY_SCHEMA  # the schema the model was given, not the arguments
    assert json.loads(tool["output.value"]) == {"city": "Rome", "temp_c": 21}


def test_llm_span_gets_model_messages_tool_calls_tools_and_token_counts(spans):
    spans.reinit(openinference=True)
    llm = _agent_run(spans)["chat gpt-4o-mini"].attributes
    assert llm["openinference.span.kind"] == "LLM"
    assert llm["llm.model_name"] == "gpt-4o-mini-2024-07-18" and llm["llm.provider"] == "openai"
    assert llm["llm.input_messages.0.message.role"] == "system"
    assert llm["llm.input_messages.0.message.content"] == "You are terse."
    assert llm["llm.input_messages.1.message.role"] == "user"
    assert llm["llm.input_messages.1.message.content"] == "Weather in Rome?"
    assert llm["llm.output_messages.0.message.role"] == "assistant"
    assert llm["llm.output_messages.0.message.tool_calls.0.tool_call.id"] == "call_1"
    assert llm["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "weather"
    assert json.loads(llm["llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments"]) == {
        "city": "Rome"
    }
    assert (llm["llm.token_count.prompt"], llm["llm.token_count.completion"], llm["llm.token_count.total"]) == (
        30, 12, 42
    )
    assert json.loads(llm["llm.tools.0.tool.json_schema"])["function"]["name"] == "weather"
    assert json.loads(llm["llm.invocation_parameters"]) == {"temperature": 0.2}
    assert llm["input.mime_type"] == llm["output.mime_type"] == "application/json"
    assert json.loads(llm["input.value"]) == {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather in Rome?"}]}
    assert json.loads(llm["output.value"]) == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]}
    # the GenAI attributes keep their own structure
    assert json.loads(llm["gen_ai.input.messages"]) == [{"role": "user", "parts": [
        {"type": "text", "content": "Weather in Rome?"}]}]
    assert json.loads(llm["gen_ai.output.messages"])[0]["parts"][0]["type"] == "tool_call"


def test_llm_values_are_openai_messages_with_tool_results_and_several_choices(spans):
    spans.reinit(openinference=True)
    with tracemill.llm_call(provider="openai", model="m", input_messages=[
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]) as call:
        call.record_output([{"role": "assistant", "content": "Sunny."}, {"role": "assistant", "content": "Warm."}])
    llm = spans.named("chat m").attributes
    messages = json.loads(llm["input.value"])["messages"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "w", "arguments": "{}"}
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert json.loads(llm["output.value"]) == [{"role": "assistant", "content": "Sunny."},
                                               {"role": "assistant", "content": "Warm."}]


def test_every_name_written_is_an_openinference_convention_name(spans):
    spans.reinit(openinference=True)
    by_name = _agent_run(spans)
    written = set()
    for span in by_name.values():
        written |= openinference_keys(span.attributes)
        assert span.attributes["openinference.span.kind"] in SPEC_KINDS
    for key in written:
        assert set(_spec_names(key)) <= SPEC_ATTRIBUTES, key
    assert {"llm.input_messages.0.message.role", "tool.parameters", "input.value", "output.mime_type"} <= written


def test_resource_names_the_phoenix_project_after_the_service(spans):
    spans.reinit(openinference=True)
    span = _agent_run(spans)["invoke_agent assistant"]
    assert span.resource.attributes["openinference.project.name"] == span.resource.attributes["service.name"]


def test_environment_variable_turns_it_on_and_it_is_off_by_default(spans):
    _agent_run(spans)
    assert not any(openinference_keys(s.attributes) for s in spans.finished)
    assert all("openinference.project.name" not in s.resource.attributes for s in spans.finished)

    spans.exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(spans.exporter), env={"TRACEMILL_OPENINFERENCE": "1"})
    assert _agent_run(spans)["invoke_agent assistant"].attributes["openinference.span.kind"] == "AGENT"


def test_spans_that_are_not_an_agents_are_left_alone(spans):
    spans.reinit(openinference=True)
    with RUNTIME.provider.get_tracer("http-client").start_as_current_span("GET /health"):
        pass
    assert not openinference_keys(spans.named("GET /health").attributes)


def test_openinference_values_are_derived_after_redaction(spans):
    spans.reinit(openinference=True)

    @tracemill.tool
    def login(user, password):
        return "ok"

    login("ann", "hunter2")
    attributes = spans.named("execute_tool login").attributes
    assert json.loads(attributes["input.value"]) == {"user": "ann", "password": MASK}
    assert "hunter2" not in attributes["tool.parameters"]
