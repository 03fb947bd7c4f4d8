"""The LlamaIndex integration: FunctionAgent and ReActAgent runs driven by scripted LLMs."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM, MockLLM
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.tools import FunctionTool
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import tracemill

# Workflows inspect their own pydantic fields when built; pydantic warns about it.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]


@tracemill.step
def remember(value: int) -> int:
    return value


def add(a: int, b: int) -> int:
    """Add two numbers."""
    remember(a + b)
    return a + b


def scripted_llm() -> MockFunctionCallingLLM:
    """A function-calling LLM that first asks for add(1, 2), then answers."""
    turns = iter([
        ChatMessage(role="assistant", blocks=[
            TextBlock(text="let me add"),
            ToolCallBlock(tool_call_id="call_9", tool_name="add", tool_kwargs={"a": 1, "b": 2}),
        ]),
        ChatMessage(role="assistant", content="the answer is 3"),
    ])
    return MockFunctionCallingLLM(response_generator=lambda messages, **kwargs: next(turns))


@pytest.fixture
def traced(spans, instrument):
    instrument("llama_index")
    return spans


def _by_op(spans, operation):
    return [s for s in spans.finished if s.attributes.get("gen_ai.operation.name") == operation]


def _json(span, key):
    return json.loads(span.attributes[key])


def _ancestors(spans, span):
    by_id = {s.context.span_id: s for s in spans.finished}
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def _run(agent: Any, message: str) -> Any:
    async def main():
        result = await agent.run(user_msg=message)
        return result, trace.get_current_span()

    return asyncio.run(main())


def _assert_agent_trace(spans):
    (root,) = _by_op(spans, "invoke_agent")
    first, second = sorted(_by_op(spans, "chat"), key=lambda s: s.start_time)
    (tool_span,) = _by_op(spans, "execute_tool")
    assert root.name == "invoke_agent calculator"
    assert root.parent is None
    assert {s.context.trace_id for s in spans.finished} == {root.context.trace_id}
    assert _ancestors(spans, first)[-2:] == ["run_agent_step", "invoke_agent calculator"]
    assert _json(first, "gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": "You add numbers."}]},
        {"role": "user", "parts": [{"type": "text", "content": "1+2?"}]},
    ]
    assert _json(first, "gen_ai.tool.definitions")[0]["name"] == "add"
    assert _json(first, "gen_ai.output.messages") == [{"role": "assistant", "finish_reason": "tool_calls", "parts": [
        {"type": "text", "content": "let me add"},
        {"type": "tool_call", "id": "call_9", "name": "add", "arguments": {"a": 1, "b": 2}},
    ]}]
    assert tool_span.name == "execute_tool add"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_9"
    assert _json(tool_span, "gen_ai.tool.call.arguments") == {"a": 1, "b": 2}
    assert _json(tool_span, "gen_ai.tool.call.result") == "3"
    assert [link.context.span_id for link in tool_span.links] == [first.context.span_id]
    assert spans.named("remember").parent.span_id == tool_span.context.span_id
    assert _json(second, "gen_ai.input.messages")[-1] == {
        "role": "tool", "parts": [{"type": "tool_call_response", "id": "call_9", "response": "3"}]}
    assert _json(second, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "the answer is 3"}]
    return first, second


# --- agents ---------------------------------------------------------------------------------


def test_function_agent_records_agent_llm_and_tool_spans_linked_by_call_id(traced):
    agent = FunctionAgent(name="calculator", tools=[FunctionTool.from_defaults(add)], llm=scripted_llm(),
                          system_prompt="You add numbers.", streaming=False)

    result, current_after = _run(agent, "1+2?")

    assert str(result) == "the answer is 3"
    _assert_agent_trace(traced)
    steps = {s.name for s in traced.finished if s.attributes.get("tracemill.step.kind") == "agent_step"}
    assert {"run_agent_step", "call_tool", "parse_agent_output"} <= steps
    assert not current_after.get_span_context().is_valid


def test_function_agent_nested_llm_methods_give_one_llm_span_per_call(traced):
    agent = FunctionAgent(name="calculator", tools=[FunctionTool.from_defaults(add)], llm=scripted_llm(),
                          system_prompt="You add numbers.", streaming=False)

    _run(agent, "1+2?")

    # achat() delegates to chat(): the outer one is a wrapper, the inner one the LLM span.
    wrappers = [s for s in traced.finished if s.attributes.get("tracemill.llm.delegated")]
    assert [s.name for s in wrappers] == ["MockFunctionCallingLLM.achat"] * 2
    assert len(_by_op(traced, "chat")) == 2


def test_streaming_function_agent_records_llm_output_and_first_chunk_time(traced):
    agent = FunctionAgent(name="calculator", tools=[FunctionTool.from_defaults(add)], llm=scripted_llm(),
                          system_prompt="You add numbers.", streaming=True)

    result, _ = _run(agent, "1+2?")

    assert str(result) == "the answer is 3"
    first, second = _assert_agent_trace(traced)
    assert first.attributes["tracemill.response.time_to_first_chunk_s"] >= 0
    assert "tracemill.closed_early" not in second.attributes


@pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning")  # ReActAgent's own
def test_react_agent_records_the_tool_it_runs(traced):
    turns = iter([
        'Thought: I need to add.\nAction: add\nAction Input: {"a": 1, "b": 2}',
        "Thought: I can answer without using any more tools.\nAnswer: 3",
    ])
    llm = MockFunctionCallingLLM(response_generator=lambda messages, **kwargs: ChatMessage(
        role="assistant", content=next(turns)))
    agent = ReActAgent(name="reasoner", tools=[FunctionTool.from_defaults(add)], llm=llm, streaming=False)

    result, _ = _run(agent, "1+2?")

    assert "3" in str(result)
    (root,) = _by_op(traced, "invoke_agent")
    assert root.name == "invoke_agent reasoner"
    assert len(_by_op(traced, "chat")) == 2
    tool_span = traced.named("execute_tool add")
    assert _json(tool_span, "gen_ai.tool.call.result") == "3"
    assert tool_span.attributes["gen_ai.tool.call.id"]
    assert root.context.span_id in {s.parent.span_id for s in traced.finished if s.parent}


def test_tool_returning_an_error_marks_the_tool_span_error(traced):
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    turns = iter([
        ChatMessage(role="assistant", blocks=[
            ToolCallBlock(tool_call_id="call_d", tool_name="divide", tool_kwargs={"a": 1, "b": 0})]),
        ChatMessage(role="assistant", content="cannot divide by zero"),
    ])
    llm = MockFunctionCallingLLM(response_generator=lambda messages, **kwargs: next(turns))
    agent = FunctionAgent(name="calculator", tools=[FunctionTool.from_defaults(divide)], llm=llm, streaming=False)

    _run(agent, "1/0?")

    span = traced.named("execute_tool divide")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["gen_ai.tool.call.id"] == "call_d"


def test_calling_a_tool_directly_records_one_tool_span(traced):
    tool = FunctionTool.from_defaults(add)

    output = tool(a=2, b=3)

    assert output.raw_output == 5
    (span,) = _by_op(traced, "execute_tool")
    assert span.name == "execute_tool add"
    assert _json(span, "gen_ai.tool.call.arguments") == {"a": 2, "b": 3}
    assert _json(span, "gen_ai.tool.call.result") == "5"



def test_tool_with_a_blank_description_is_still_traced(traced):
    tool = FunctionTool.from_defaults(fn=add, description="   \n  ")

    assert tool(a=1, b=2).raw_output == 3
    (span,) = _by_op(traced, "execute_tool")
    assert span.name == "execute_tool add"
    assert "gen_ai.tool.description" not in span.attributes

# --- LLMs used directly ---------------------------------------------------------------------


def test_llm_complete_records_one_text_completion_span(traced):
    response = MockLLM(max_tokens=3).complete("hello there")

    assert response.text
    (span,) = _by_op(traced, "text_completion")
    assert span.name == "text_completion MockLLM"
    assert _json(span, "gen_ai.input.messages") == [{"role": "user", "parts": [
        {"type": "text", "content": "hello there"}]}]
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": response.text}]


def test_llm_stream_read_to_the_end_records_the_streamed_text(traced):
    chunks = list(MockLLM().stream_complete("one two"))

    (span,) = _by_op(traced, "text_completion")
    assert _json(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": chunks[-1].text}]
    assert "tracemill.closed_early" not in span.attributes


def test_llm_stream_closed_early_ends_the_span_closed_early(traced):
    stream = MockLLM().stream_complete("one two three")
    next(stream)
    stream.close()

    (span,) = _by_op(traced, "text_completion")
    assert span.attributes["tracemill.closed_early"] is True
    assert span.status.status_code is StatusCode.UNSET


def test_llm_stream_dropped_unread_ends_the_span(traced):
    stream = MockLLM().stream_complete("never read")
    assert _by_op(traced, "text_completion") == []

    del stream
    gc.collect()

    (span,) = _by_op(traced, "text_completion")
    assert span.attributes["tracemill.closed_early"] is True


def test_llm_error_marks_the_llm_span_error_and_reaches_the_caller(traced):
    class Broken(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="broken-1")

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            raise ConnectionError("model is down")

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
            raise ConnectionError("model is down")

    with pytest.raises(ConnectionError, match="model is down"):
        Broken().complete("hi")

    span = traced.named("text_completion broken-1")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ConnectionError"


# --- retrieval ------------------------------------------------------------------------------


def test_retriever_records_a_retrieval_span_with_its_nodes(traced):
    class Notes(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [NodeWithScore(node=TextNode(text=f"note about {query_bundle.query_str}", id_="n1"), score=0.5)]

    nodes = Notes().retrieve("cats")

    assert nodes[0].node.get_content() == "note about cats"
    span = traced.named("retrieval Notes")
    assert span.attributes["gen_ai.operation.name"] == "retrieval"
    assert json.loads(span.attributes["tracemill.input"]) == "cats"
    assert json.loads(span.attributes["tracemill.output"]) == [{"content": "note about cats", "score": 0.5, "id": "n1"}]


# --- with the OpenAI integration ------------------------------------------------------------


def test_llm_calling_openai_records_one_llm_span_per_request(spans, instrument, openai_server):
    import openai

    instrument("llama_index", "openai")
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)

    class OpenAIBacked(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="gpt-test")

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            answer = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": prompt}])
            return CompletionResponse(text=answer.choices[0].message.content or "")

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
            raise NotImplementedError

    openai_server.reply("from the server", input_tokens=40)
    try:
        response = OpenAIBacked().complete("hi")
    finally:
        client.close()

    assert response.text == "from the server"
    (llm,) = [s for s in spans.finished if s.attributes.get("gen_ai.operation.name") in ("chat", "text_completion")]
    assert llm.name == "chat gpt-test"
    assert llm.attributes["gen_ai.usage.input_tokens"] == 40
    wrapper = next(s for s in spans.finished if s.context.span_id == llm.parent.span_id)
    assert wrapper.attributes["tracemill.llm.delegated"] is True
    assert "gen_ai.usage.input_tokens" not in wrapper.attributes


def test_uninstrument_removes_the_handlers(spans):
    tracemill.instrument("llama_index")
    tracemill.uninstrument("llama_index")

    MockLLM().complete("hi")

    assert spans.finished == []
