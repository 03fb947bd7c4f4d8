"""A run's root span takes its input and output from its agents (or last LLM answer) when none is given."""

from __future__ import annotations

import asyncio
import json

import pytest

import tracemill
from tracemill.tracer.redaction import MASK

ROOT = "invoke_workflow desk"


@tracemill.tool
def lookup(city: str) -> str:
    return "sunny"


@tracemill.agent
def inner(question: str) -> str:
    return "inner says " + question


@tracemill.agent
def outer(question: str, *, api_key: str = "") -> str:
    inner("sub " + question)
    return lookup("Rome")


def _root(spans):
    return spans.named(ROOT).attributes


def test_root_takes_first_agents_input_and_outermost_agents_output(spans):
    with tracemill.run("desk"):
        outer("Weather in Rome?", api_key="sk-secret-123456789012")
    root = _root(spans)
    assert json.loads(root["tracemill.input"]) == {"question": "Weather in Rome?", "api_key": MASK}
    assert json.loads(root["tracemill.output"]) == "sunny"


def test_of_agents_called_one_after_another_the_last_answers(spans):
    with tracemill.run("desk"):
        inner("first")
        inner("second")
    root = _root(spans)
    assert json.loads(root["tracemill.input"]) == {"question": "first"}
    assert json.loads(root["tracemill.output"]) == "inner says second"


def test_explicit_input_and_set_output_win(spans):
    with tracemill.run("desk", input={"ticket": 7}) as run:
        outer("Weather?")
        run.set_output({"answer": 42})
    root = _root(spans)
    assert json.loads(root["tracemill.input"]) == {"ticket": 7}
    assert json.loads(root["tracemill.output"]) == {"answer": 42}


def test_without_agents_the_last_llm_answer_is_the_output(spans):
    with tracemill.run("desk"):
        with tracemill.llm_call(provider="openai", model="m", input_messages="plan") as call:
            call.record_output(tool_calls=[{"id": "c1", "name": "lookup", "arguments": {"city": "Rome"}}])
        lookup("Rome")
        with tracemill.llm_call(provider="openai", model="m", input_messages="answer") as call:
            call.record_output(content="It is sunny in Rome.")
    root = _root(spans)
    assert "tracemill.input" not in root
    assert json.loads(root["tracemill.output"]) == "It is sunny in Rome."


def test_a_run_ending_on_a_tool_call_decision_records_that_message(spans):
    with tracemill.run("desk"), tracemill.llm_call(provider="openai", model="m", input_messages="go") as call:
        call.record_output(tool_calls=[{"id": "c1", "name": "lookup", "arguments": {"city": "Rome"}}])
    output = json.loads(_root(spans)["tracemill.output"])
    assert output["role"] == "assistant"
    assert output["parts"][0] == {"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"city": "Rome"}}


def test_a_failed_outer_agent_leaves_the_last_llm_answer_not_an_inner_agents(spans):
    @tracemill.agent
    def failing(question: str) -> str:
        inner(question)
        with tracemill.llm_call(provider="openai", model="m", input_messages=question) as call:
            call.record_output(content="I cannot do that.")
        raise RuntimeError("gave up")

    with pytest.raises(RuntimeError), tracemill.run("desk"):
        failing("q")
    assert json.loads(_root(spans)["tracemill.output"]) == "I cannot do that."


def test_async_and_generator_agents_report_to_the_run(spans):
    @tracemill.agent
    async def async_agent(question: str) -> str:
        return "async " + question

    @tracemill.agent
    def streaming(question: str):
        yield "a"
        yield "b"

    async def main() -> None:
        async with tracemill.run("desk"):
            await async_agent("x")

    asyncio.run(main())
    assert json.loads(_root(spans)["tracemill.output"]) == "async x"
    spans.clear()
    with tracemill.run("desk"):
        assert list(streaming("y")) == ["a", "b"]
    assert json.loads(_root(spans)["tracemill.output"]) == ["a", "b"]


def test_capture_off_records_no_run_input_or_output(spans):
    spans.reinit(capture_content=False)
    with tracemill.run("desk"):
        outer("secret question")
    root = _root(spans)
    assert "tracemill.input" not in root and "tracemill.output" not in root


def test_openinference_root_gets_input_and_output_values(spans):
    spans.reinit(openinference=True)
    with tracemill.run("desk"):
        outer("Weather in Rome?")
    root = _root(spans)
    assert json.loads(root["input.value"])["question"] == "Weather in Rome?"
    assert root["input.mime_type"] == "application/json"
    assert (root["output.value"], root["output.mime_type"]) == ("sunny", "text/plain")


def test_a_run_nested_in_an_agent_keeps_its_own_output(spans):
    @tracemill.agent
    def supervisor(task: str) -> str:
        with tracemill.run("desk"):
            inner(task)
        return "supervised"

    with tracemill.run("top"):
        supervisor("t")
    assert json.loads(_root(spans)["tracemill.output"]) == "inner says t"
    assert json.loads(spans.named("invoke_workflow top").attributes["tracemill.output"]) == "supervised"


def test_a_failing_redaction_callback_on_the_run_output_never_reaches_user_code(spans):
    def redact(attribute, value):
        if attribute == "tracemill.output":
            raise RuntimeError("callback bug")
        return value

    spans.reinit(redact=redact)
    with tracemill.run("desk"), tracemill.llm_call(provider="openai", model="m", input_messages="q") as call:
        call.record_output(content="an answer")
    root = _root(spans)
    assert root["tracemill.output"] == json.dumps(MASK)
    assert spans.named("chat m").end_time is not None
