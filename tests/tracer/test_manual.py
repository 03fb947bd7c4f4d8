"""The manual API: LLM calls and tool calls recorded by hand, with causality between them."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import tracemill

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _llm_asking_for_weather(call_id: str | None = "call_42"):
    call = tracemill.llm_call(
        provider="openai", model="gpt-4o", input_messages=[{"role": "user", "content": "weather in Oslo?"}],
        system_instructions="Be brief.", tool_definitions=TOOLS, temperature=0.2, max_tokens=100,
    )
    with call:
        call.record_output(
            tool_calls=[{"id": call_id, "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}],
            finish_reasons=["tool_calls"], response_model="gpt-4o-2024", response_id="resp_1",
            input_tokens=20, output_tokens=7,
        )
    return call


def test_llm_call_records_genai_attributes(spans):
    _llm_asking_for_weather()
    span = spans.named("chat gpt-4o")
    attributes = span.attributes
    assert span.kind is SpanKind.CLIENT
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.max_tokens"] == 100
    assert attributes["gen_ai.response.model"] == "gpt-4o-2024"
    assert attributes["gen_ai.response.id"] == "resp_1"
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attributes["gen_ai.usage.input_tokens"] == 20
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "weather in Oslo?"}]}
    ]
    assert json.loads(attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attributes["gen_ai.tool.definitions"]) == TOOLS
    assert json.loads(attributes["gen_ai.output.messages"]) == [{
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_42", "name": "get_weather", "arguments": {"city": "Oslo"}}],
        "finish_reason": "tool_calls",
    }]


def test_tool_call_with_id_links_to_the_llm_span_that_asked(spans):
    with tracemill.run("weather"):
        llm = _llm_asking_for_weather()
        with tracemill.tool_call("get_weather", call_id="call_42", arguments='{"city": "Oslo"}') as tool:
            tool.record_result({"temp": 3})
    span = spans.named("execute_tool get_weather")
    assert span.attributes["gen_ai.tool.call.id"] == "call_42"
    assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == {"city": "Oslo"}
    assert json.loads(span.attributes["gen_ai.tool.call.result"]) == {"temp": 3}
    assert [link.context.span_id for link in span.links] == [llm.span_context.span_id]


def test_decorated_tool_takes_the_pending_call_id_of_the_same_trace(spans):
    @tracemill.tool
    def get_weather(city):
        return "cold"

    @tracemill.agent
    def weather_agent():
        llm = _llm_asking_for_weather("call_7")
        get_weather("Oslo")
        get_weather("Bergen")  # not asked for by any LLM output: no id, no link
        return llm

    llm = weather_agent()
    first, second = [s for s in spans.finished if s.name == "execute_tool get_weather"]
    assert first.attributes["gen_ai.tool.call.id"] == "call_7"
    assert [link.context.span_id for link in first.links] == [llm.span_context.span_id]
    assert "gen_ai.tool.call.id" not in second.attributes
    assert list(second.links) == []


def test_pending_tool_calls_do_not_cross_traces(spans):
    @tracemill.tool
    def get_weather(city):
        return "cold"

    with tracemill.run("first"):
        _llm_asking_for_weather("call_a")
    with tracemill.run("second"):
        get_weather("Oslo")
    assert "gen_ai.tool.call.id" not in spans.named("execute_tool get_weather").attributes


def test_llm_call_exception_marks_error_and_propagates(spans):
    with pytest.raises(TimeoutError), tracemill.llm_call(provider="openai", model="m"):
        raise TimeoutError("slow provider")
    span = spans.named("chat m")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "TimeoutError"


def test_tool_call_error_message_marks_error(spans):
    with tracemill.tool_call("search") as tool:
        tool.record_error("index unavailable")
    span = spans.named("execute_tool search")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "index unavailable"
    assert span.attributes["error.type"] == "tool_error"


def test_start_and_end_outside_a_block_end_once(spans):
    call = tracemill.llm_call(provider="openai", model="stream-model").start()
    call.record_output(content="partial")
    call.end()
    call.end()
    assert spans.names() == ["chat stream-model"]


def test_async_with_works_for_manual_spans(spans):
    async def main():
        async with tracemill.llm_call(provider="anthropic", model="claude") as call:
            call.record_output(content="hi", finish_reasons=["stop"])

    asyncio.run(main())
    span = spans.named("chat claude")
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hi"}], "finish_reason": "stop"}
    ]


def test_manual_spans_are_no_ops_when_tracing_is_disabled():
    tracemill.init(disabled=True, env={})
    try:
        with tracemill.llm_call(provider="openai", model="m") as call:
            call.record_output(content="x")
        assert call.span is None
    finally:
        tracemill.shutdown()


def test_llm_call_and_tool_call_show_their_keyword_arguments_like_the_classes():
    for factory, cls in ((tracemill.llm_call, tracemill.LLMCall), (tracemill.tool_call, tracemill.ToolCall)):
        params = inspect.signature(factory).parameters
        assert "kwargs" not in params
        assert list(params) == list(inspect.signature(cls).parameters)
        assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items() if name != "name")


def test_span_not_found_error_is_public():
    assert "SpanNotFoundError" in tracemill.__all__
    assert issubclass(tracemill.SpanNotFoundError, tracemill.TracemillError)
