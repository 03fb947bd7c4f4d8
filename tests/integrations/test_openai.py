"""The OpenAI integration, with the real ``openai`` client against a real local HTTP server."""

from __future__ import annotations

import asyncio
import gc
import json

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

import tracemill

TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add two numbers.",
                                           "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1+2?"}]


@pytest.fixture
def client(openai_server):
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def traced(spans, instrument):
    instrument("openai")
    return spans


def _chat_spans(spans):
    return [s for s in spans.finished if s.attributes.get("gen_ai.operation.name") == "chat"]


def _json(span, key):
    return json.loads(span.attributes[key])


def _async_client(server):
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


# --- non-streaming --------------------------------------------------------------------------


def test_chat_completion_records_request_response_and_usage(traced, client, openai_server):
    openai_server.reply("3", input_tokens=21, output_tokens=2)

    result = client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, temperature=0.2, top_p=0.9, max_tokens=50, seed=7, stop=["\n"],
        tools=TOOLS,
    )

    assert result.choices[0].message.content == "3"
    span = traced.named("chat gpt-test")
    attributes = span.attributes
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.top_p"] == 0.9
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.seed"] == 7
    assert attributes["gen_ai.request.stop_sequences"] == ("\n",)
    assert attributes["gen_ai.response.model"] == "gpt-test"
    assert attributes["gen_ai.response.id"] == result.id
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 21
    assert attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == openai_server.port
    assert _json(span, "gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is 1+2?"}]},
    ]
    assert _json(span, "gen_ai.tool.definitions") == [
        {"type": "function", "name": "add", "description": "Add two numbers.",
         "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}]
    assert _json(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": "3"}], "finish_reason": "stop"}]


def test_chat_completion_records_the_configuration_version_and_named_prompt(traced, client, openai_server):
    from tracemill.tracer.versions.config_version import attributes_content, candidate_version, version_of

    for question, system in (("What is 1+2?", "Be brief."), ("What is 2+2?", "Be brief."), ("2+5?", "Be loud.")):
        openai_server.reply("ok")
        with tracemill.prompt("calculator", 4):
            client.chat.completions.create(model="gpt-test", messages=[
                {"role": "system", "content": system}, {"role": "user", "content": question}], temperature=0.2,
                tools=TOOLS)
    first, second, third = (s.attributes for s in traced.finished if s.name == "chat gpt-test")
    assert first["tracemill.config.version"] == second["tracemill.config.version"] != third["tracemill.config.version"]
    assert (first["gen_ai.prompt.name"], first["gen_ai.prompt.version"]) == ("calculator", "4")
    # The span's content hashes to the same version at ingest, and an eval's candidate_version agrees.
    assert version_of(attributes_content(dict(first))) == first["tracemill.config.version"]
    flat = [{"type": "function", "name": "add", "description": "Add two numbers.",
             "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}]
    assert candidate_version(provider="openai", model="gpt-test", system_instructions="Be brief.", tools=flat,
                             params={"temperature": 0.2}) == first["tracemill.config.version"]


def test_chat_completion_tool_calls_become_output_parts_with_ids(traced, client, openai_server):
    openai_server.reply(None, tool_calls=[("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})])

    result = client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS)

    ids = [c.id for c in result.choices[0].message.tool_calls]
    span = traced.named("chat gpt-test")
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert _json(span, "gen_ai.output.messages") == [{
        "role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "tool_call", "id": ids[0], "name": "add", "arguments": {"a": 1, "b": 2}},
            {"type": "tool_call", "id": ids[1], "name": "add", "arguments": {"a": 3, "b": 4}},
        ]}]


def test_tool_span_executing_a_call_gets_its_id_and_links_to_the_llm_span(traced, client, openai_server):
    openai_server.reply(None, tool_calls=[("add", {"a": 1, "b": 2})])

    @tracemill.tool
    def add(a: int, b: int) -> int:
        return a + b

    with tracemill.run("solve"):
        result = client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS)
        call = result.choices[0].message.tool_calls[0]
        add(**json.loads(call.function.arguments))

    llm, tool = traced.named("chat gpt-test"), traced.named("execute_tool add")
    assert tool.attributes["gen_ai.tool.call.id"] == call.id
    assert [link.context.span_id for link in tool.links] == [llm.context.span_id]


def test_call_inside_a_decorated_agent_nests_under_it(traced, client, openai_server):
    @tracemill.agent
    def solver() -> str:
        return client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices[0].message.content

    solver()

    agent, llm = traced.named("invoke_agent solver"), traced.named("chat gpt-test")
    assert llm.parent.span_id == agent.context.span_id
    assert llm.context.trace_id == agent.context.trace_id


def test_messages_given_as_an_iterator_still_reach_the_server(traced, client, openai_server):
    client.chat.completions.create(model="gpt-test", messages=iter(MESSAGES))

    assert openai_server.requests[0]["messages"] == MESSAGES
    assert len(_json(traced.named("chat gpt-test"), "gen_ai.input.messages")) == 2


def test_async_chat_completion_records_one_span(traced, openai_server):
    async def main():
        client = _async_client(openai_server)
        try:
            return await client.chat.completions.create(model="gpt-async", messages=MESSAGES)
        finally:
            await client.close()

    result = asyncio.run(main())

    span = traced.named("chat gpt-async")
    assert span.attributes["gen_ai.response.id"] == result.id
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "ok"}]


def test_chat_completions_parse_records_the_structured_answer(traced, client, openai_server):
    class Answer(BaseModel):
        value: int

    openai_server.reply('{"value": 3}')

    result = client.chat.completions.parse(model="gpt-test", messages=MESSAGES, response_format=Answer)

    assert result.choices[0].message.parsed == Answer(value=3)
    assert len(traced.finished) == 1
    assert _json(traced.named("chat gpt-test"), "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": '{"value": 3}'}]


def test_with_raw_response_returns_the_raw_response_and_records_output(traced, client, openai_server):
    openai_server.reply("raw answer")

    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)

    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert completion.choices[0].message.content == "raw answer"
    span = traced.named("chat gpt-test")
    assert span.attributes["gen_ai.response.id"] == completion.id
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "raw answer"}]


def test_responses_create_records_instructions_input_items_and_function_calls(traced, client, openai_server):
    openai_server.reply("checking", tool_calls=[("add", {"a": 1, "b": 2})], input_tokens=30, output_tokens=9)
    history = [
        {"role": "user", "content": "What is 1+2?"},
        {"type": "function_call", "call_id": "call_0", "name": "add", "arguments": '{"a": 0, "b": 0}'},
        {"type": "function_call_output", "call_id": "call_0", "output": "0"},
    ]

    response = client.responses.create(
        model="gpt-resp", instructions="Use tools.", input=history, max_output_tokens=64,
        tools=[{"type": "function", "name": "add", "parameters": {"type": "object"}}],
    )

    span = traced.named("chat gpt-resp")
    attributes = span.attributes
    assert attributes["gen_ai.response.id"] == response.id
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.usage.input_tokens"] == 30
    assert attributes["gen_ai.usage.output_tokens"] == 9
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert _json(span, "gen_ai.system_instructions") == [{"type": "text", "content": "Use tools."}]
    assert _json(span, "gen_ai.tool.definitions") == [
        {"type": "function", "name": "add", "parameters": {"type": "object"}}]
    assert _json(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "What is 1+2?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_0", "name": "add",
                                         "arguments": {"a": 0, "b": 0}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_0", "response": "0"}]},
    ]
    call_id = next(item.call_id for item in response.output if item.type == "function_call")
    assert _json(span, "gen_ai.output.messages") == [{
        "role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "text", "content": "checking"},
            {"type": "tool_call", "id": call_id, "name": "add", "arguments": {"a": 1, "b": 2}},
        ]}]


def test_azure_client_is_recorded_with_the_azure_provider(traced, openai_server):
    client = openai.AzureOpenAI(base_url=openai_server.base_url, api_key="test-key", api_version="2024-10-21",
                                max_retries=0)
    try:
        client.chat.completions.create(model="my-deployment", messages=MESSAGES)
    finally:
        client.close()

    assert traced.named("chat my-deployment").attributes["gen_ai.provider.name"] == "azure.ai.openai"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error_class"), [
    (429, openai.RateLimitError), (500, openai.InternalServerError), (400, openai.BadRequestError),
])
def test_api_status_error_ends_span_with_error_and_reaches_caller_unchanged(
    traced, client, openai_server, status, error_class
):
    openai_server.reply(status=status, error_message="slow down")

    with pytest.raises(error_class) as raised:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert type(raised.value) is error_class
    assert raised.value.status_code == status
    span = traced.named("chat gpt-test")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"].endswith(error_class.__name__)
    assert span.attributes["http.response.status_code"] == status
    assert "gen_ai.output.messages" not in span.attributes


def test_timeout_ends_span_with_error_and_reaches_caller(traced, client, openai_server):
    openai_server.reply("late", delay_s=1.0)

    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, timeout=0.2)

    span = traced.named("chat gpt-test")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"].endswith("APITimeoutError")


def test_async_rate_limit_error_ends_span_with_error(traced, openai_server):
    openai_server.reply(status=429)

    async def main():
        client = _async_client(openai_server)
        try:
            await client.responses.create(model="gpt-resp", input="hi")
        finally:
            await client.close()

    with pytest.raises(openai.RateLimitError):
        asyncio.run(main())
    assert traced.named("chat gpt-resp").status.status_code is StatusCode.ERROR


# --- streaming ------------------------------------------------------------------------------


def _stream_chat(client, **kwargs):
    return client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True, **kwargs)


def test_chat_stream_read_to_the_end_records_accumulated_output_usage_and_first_chunk_time(
    traced, client, openai_server
):
    openai_server.reply("one two three", tool_calls=[("add", {"a": 1, "b": 2})], input_tokens=5, output_tokens=4)

    chunks = list(_stream_chat(client, stream_options={"include_usage": True}, tools=TOOLS))

    call_id = next(c.choices[0].delta.tool_calls[0].id for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    span = traced.named("chat gpt-test")
    attributes = span.attributes
    assert attributes["gen_ai.usage.input_tokens"] == 5
    assert attributes["gen_ai.usage.output_tokens"] == 4
    assert attributes["gen_ai.response.id"] == chunks[0].id
    assert attributes["tracemill.response.time_to_first_chunk_s"] > 0
    assert "tracemill.closed_early" not in attributes
    assert _json(span, "gen_ai.output.messages") == [{
        "role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "text", "content": "one two three"},
            {"type": "tool_call", "id": call_id, "name": "add", "arguments": {"a": 1, "b": 2}},
        ]}]


def test_chat_stream_caller_sees_exactly_the_uninstrumented_chunks(spans, client, openai_server):
    def read():
        openai_server.reset()
        openai_server.reply("alpha beta", tool_calls=[("add", {"a": 1})])
        return [c.model_dump(exclude={"created"}) for c in _stream_chat(client, stream_options={"include_usage": True})]

    plain = read()
    tracemill.instrument("openai")
    try:
        traced = read()
    finally:
        tracemill.uninstrument()

    assert traced == plain
    assert len(plain) == 7
    assert len(_chat_spans(spans)) == 1


def test_chat_stream_break_ends_span_once_with_partial_output(traced, client, openai_server):
    openai_server.reply("one two three four")
    stream = _stream_chat(client)

    for chunk in stream:
        if chunk.choices[0].delta.content == "one ":
            break
    stream.close()

    span = traced.named("chat gpt-test")
    assert span.attributes["tracemill.closed_early"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "one "}]


def test_chat_stream_close_before_reading_ends_span(traced, client, openai_server):
    stream = _stream_chat(client)
    stream.close()
    stream.close()

    assert len(_chat_spans(traced)) == 1
    assert traced.named("chat gpt-test").attributes["tracemill.closed_early"] is True


def test_chat_stream_left_in_a_with_block_ends_span(traced, client, openai_server):
    openai_server.reply("one two three")
    with _stream_chat(client) as stream:
        first = next(stream)

    assert first.choices[0].delta.role == "assistant"
    span = traced.named("chat gpt-test")
    assert span.attributes["tracemill.closed_early"] is True
    assert span.end_time is not None


def test_exception_leaving_a_stream_with_block_fails_the_span(traced, client, openai_server):
    openai_server.reply("one two three")
    with pytest.raises(KeyError, match="consumer bug"), _stream_chat(client) as stream:
        next(stream)
        raise KeyError("consumer bug")

    span = traced.named("chat gpt-test")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"
    assert "tracemill.closed_early" not in span.attributes


def test_chat_stream_dropped_unread_ends_span_on_garbage_collection(traced, client, openai_server):
    stream = _stream_chat(client)
    assert traced.finished == []

    del stream
    gc.collect()

    span = traced.named("chat gpt-test")
    assert span.attributes["tracemill.closed_early"] is True


def test_chat_stream_read_with_next_ends_span_at_stop_iteration(traced, client, openai_server):
    openai_server.reply("a b")
    stream = _stream_chat(client)

    texts = []
    with pytest.raises(StopIteration):
        while True:
            chunk = next(stream)
            texts.append(chunk.choices[0].delta.content or "")

    assert "".join(texts) == "a b"
    assert len(_chat_spans(traced)) == 1
    assert "tracemill.closed_early" not in traced.named("chat gpt-test").attributes


def test_chat_stream_error_event_ends_span_with_error(traced, client, openai_server):
    openai_server.reply("one two three", fail_after_chunks=1, error_message="overloaded")

    with pytest.raises(openai.APIError, match="overloaded"):
        list(_stream_chat(client))

    span = traced.named("chat gpt-test")
    assert span.status.status_code is StatusCode.ERROR
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "one "}]


def test_chat_stream_leaves_no_context_attached_while_the_caller_holds_a_chunk(traced, client, openai_server):
    openai_server.reply("a b c")
    seen = [trace.get_current_span() for _ in _stream_chat(client)]

    assert all(not span.get_span_context().is_valid for span in seen)


def test_stream_helper_records_one_span(traced, client, openai_server):
    openai_server.reply("via helper")

    with client.chat.completions.stream(model="gpt-test", messages=MESSAGES) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].message.content == "via helper"
    assert len(_chat_spans(traced)) == 1
    assert _json(traced.named("chat gpt-test"), "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "via helper"}]


def test_with_raw_response_stream_is_traced_through_parse(traced, client, openai_server):
    openai_server.reply("raw stream")

    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse())

    assert text == "raw stream"
    assert raw.status_code == 200
    assert _json(traced.named("chat gpt-test"), "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "raw stream"}]


def test_async_with_raw_response_stream_is_traced_through_parse(traced, openai_server):
    openai_server.reply("async raw")

    async def main():
        client = _async_client(openai_server)
        try:
            raw = await client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES,
                                                                         stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in raw.parse()])
        finally:
            await client.close()

    assert asyncio.run(main()) == "async raw"
    assert _json(traced.named("chat gpt-test"), "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "async raw"}]


def test_async_chat_stream_read_to_the_end_records_output(traced, openai_server):
    openai_server.reply("x y z")

    async def main():
        client = _async_client(openai_server)
        try:
            stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
            return [c async for c in stream]
        finally:
            await client.close()

    chunks = asyncio.run(main())

    assert len(chunks) == 5
    span = traced.named("chat gpt-test")
    assert "tracemill.closed_early" not in span.attributes
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "x y z"}]


def test_async_chat_stream_break_then_close_ends_span_once(traced, openai_server):
    openai_server.reply("x y z")

    async def main():
        client = _async_client(openai_server)
        try:
            async with await client.chat.completions.create(
                model="gpt-test", messages=MESSAGES, stream=True
            ) as stream:
                async for chunk in stream:
                    if chunk.choices[0].delta.content:
                        break
        finally:
            await client.close()

    asyncio.run(main())

    assert len(_chat_spans(traced)) == 1
    span = traced.named("chat gpt-test")
    assert span.attributes["tracemill.closed_early"] is True
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "x "}]


def test_async_chat_stream_cancelled_ends_span_with_error_and_cancels_the_caller(traced, openai_server):
    openai_server.reply("x y z", chunk_delay_s=0.5)
    started = asyncio.Event()

    async def consume(client):
        stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
        async for _ in stream:
            started.set()

    async def main():
        client = _async_client(openai_server)
        try:
            task = asyncio.create_task(consume(client))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await client.close()

    asyncio.run(main())

    span = traced.named("chat gpt-test")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "asyncio.exceptions.CancelledError"


def test_responses_stream_records_the_final_response(traced, client, openai_server):
    openai_server.reply("sure thing", tool_calls=[("add", {"a": 1, "b": 2})], input_tokens=8, output_tokens=3)

    events = list(client.responses.create(model="gpt-resp", input="hi", stream=True))

    final = events[-1].response
    span = traced.named("chat gpt-resp")
    assert events[0].type == "response.created"
    assert span.attributes["gen_ai.response.id"] == final.id
    assert span.attributes["gen_ai.usage.input_tokens"] == 8
    assert span.attributes["tracemill.response.time_to_first_chunk_s"] > 0
    call_id = final.output[1].call_id
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "sure thing"},
        {"type": "tool_call", "id": call_id, "name": "add", "arguments": {"a": 1, "b": 2}},
    ]


def test_responses_stream_break_records_the_text_received_so_far(traced, client, openai_server):
    openai_server.reply("one two three")

    with client.responses.create(model="gpt-resp", input="hi", stream=True) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break

    span = traced.named("chat gpt-resp")
    assert span.attributes["tracemill.closed_early"] is True
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "one "}]


def test_async_responses_stream_records_output(traced, openai_server):
    openai_server.reply("async events")

    async def main():
        client = _async_client(openai_server)
        try:
            stream = await client.responses.create(model="gpt-resp", input="hi", stream=True)
            return [e.type async for e in stream]
        finally:
            await client.close()

    types = asyncio.run(main())

    assert types[-1] == "response.completed"
    assert _json(traced.named("chat gpt-resp"), "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "async events"}]


# --- switches -------------------------------------------------------------------------------


def test_uninstrument_stops_tracing_and_restores_the_methods(spans, client, openai_server):
    original = openai.resources.chat.completions.Completions.__dict__["create"]
    tracemill.instrument("openai")
    assert openai.resources.chat.completions.Completions.__dict__["create"] is not original

    tracemill.uninstrument("openai")
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert openai.resources.chat.completions.Completions.__dict__["create"] is original
    assert spans.finished == []


def test_instrument_twice_records_one_span_per_call(traced, client, openai_server):
    tracemill.instrument("openai")

    client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert len(traced.finished) == 1


def test_capture_off_records_no_content_but_keeps_usage(traced, client, openai_server):
    exporter = InMemorySpanExporter()
    tracemill.init(processor=SimpleSpanProcessor(exporter), capture_content=False, env={})

    client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS)

    (span,) = exporter.get_finished_spans()
    assert "gen_ai.input.messages" not in span.attributes
    assert "gen_ai.output.messages" not in span.attributes
    assert span.attributes["gen_ai.usage.input_tokens"] == 11


def test_tracing_disabled_calls_pass_through_untraced(traced, client, openai_server):
    tracemill.init(disabled=True, env={})

    result = client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert result.choices[0].message.content == "ok"
    assert traced.finished == []

