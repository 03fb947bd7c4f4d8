"""The LangChain integration: a LangGraph tool-calling agent driven by LangChain's fake chat model."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from typing_extensions import TypedDict

import tracemill


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's fake chat model, able to bind tools and to stream tool calls."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        message = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs).generations[0].message
        words = message.content.split(" ") if message.content else []
        chunks = [AIMessageChunk(content=w + (" " if i < len(words) - 1 else ""), id=message.id)
                  for i, w in enumerate(words)]
        chunks += [AIMessageChunk(content="", id=message.id, tool_call_chunks=[
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}])
            for i, c in enumerate(message.tool_calls)]
        for chunk in chunks:
            generation = ChatGenerationChunk(message=chunk)
            if run_manager:
                run_manager.on_llm_new_token(chunk.content, chunk=generation)
            yield generation


def _script() -> list[AIMessage]:
    return [
        AIMessage(content="", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}],
                  usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}),
        AIMessage(content="the answer is 3", response_metadata={"finish_reason": "stop"}),
    ]


@tracemill.step
def remember(value: int) -> int:
    return value


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    remember(a + b)
    return a + b


class State(TypedDict):
    messages: Annotated[list, add_messages]


def build_agent(model: Any, *, tools: Any = (add,)) -> Any:
    """A LangGraph tool-calling agent loop: model -> tools -> model ... until no tool call."""
    bound = model.bind_tools(list(tools))

    def call_model(state: State) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def acall_model(state: State) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("agent", RunnableLambda(call_model, afunc=acall_model))
    graph.add_node("tools", ToolNode(list(tools), handle_tool_errors=True))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


@pytest.fixture
def traced(spans, instrument):
    instrument("langchain")
    return spans


def _by_op(spans, operation):
    return [s for s in spans.finished if s.attributes.get("gen_ai.operation.name") == operation]


def _parent_name(spans, span):
    ids = {s.context.span_id: s.name for s in spans.finished}
    return ids.get(span.parent.span_id) if span.parent else None


def _ancestors(spans, span):
    by_id = {s.context.span_id: s for s in spans.finished}
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def _json(span, key):
    return json.loads(span.attributes[key])


def _assert_agent_trace(spans):
    (root,) = _by_op(spans, "invoke_agent")
    first, second = sorted(_by_op(spans, "chat"), key=lambda s: s.start_time)
    (tool_span,) = _by_op(spans, "execute_tool")
    assert root.name == "invoke_agent LangGraph"
    assert root.parent is None
    assert {s.context.trace_id for s in spans.finished} == {root.context.trace_id}
    assert first.kind is SpanKind.CLIENT
    assert _ancestors(spans, first) == ["call_model", "agent", "invoke_agent LangGraph"]
    assert _parent_name(spans, tool_span) == "tools"
    assert _json(first, "gen_ai.output.messages")[0]["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "add", "arguments": {"a": 1, "b": 2}}]
    assert _json(first, "gen_ai.tool.definitions")[0]["name"] == "add"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    assert _json(tool_span, "gen_ai.tool.call.arguments") == {"a": 1, "b": 2}
    assert _json(tool_span, "gen_ai.tool.call.result") == "3"
    assert [link.context.span_id for link in tool_span.links] == [first.context.span_id]
    assert spans.named("remember").parent.span_id == tool_span.context.span_id
    second_input = _json(second, "gen_ai.input.messages")
    assert second_input[-1] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                                                          "response": "3"}]}
    assert _json(second, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "the answer is 3"}]
    return root, first, second, tool_span


# --- agent loops ----------------------------------------------------------------------------


def test_agent_loop_records_agent_llm_and_tool_spans_linked_by_call_id(traced):
    result = build_agent(ScriptedChatModel(messages=iter(_script()))).invoke({"messages": [("user", "1+2?")]})

    assert result["messages"][-1].content == "the answer is 3"
    _, first, second, _ = _assert_agent_trace(traced)
    assert first.attributes["gen_ai.usage.input_tokens"] == 12
    assert first.attributes["gen_ai.usage.output_tokens"] == 5
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert first.status.status_code is StatusCode.UNSET
    assert not trace.get_current_span().get_span_context().is_valid


def test_async_agent_loop_nests_spans_and_leaves_no_context_behind(traced):
    async def main():
        graph = build_agent(ScriptedChatModel(messages=iter(_script())))
        result = await graph.ainvoke({"messages": [("user", "1+2?")]})
        return result, trace.get_current_span()

    result, current_after = asyncio.run(main())

    assert result["messages"][-1].content == "the answer is 3"
    _assert_agent_trace(traced)
    assert not current_after.get_span_context().is_valid


def test_streamed_agent_run_records_llm_output_and_first_chunk_time(traced):
    async def main():
        graph = build_agent(ScriptedChatModel(messages=iter(_script())))
        return [chunk async for chunk, _ in graph.astream({"messages": [("user", "1+2?")]}, stream_mode="messages")]

    chunks = asyncio.run(main())

    assert "".join(c.content for c in chunks if isinstance(c, AIMessageChunk)) == "the answer is 3"
    _, first, second, _ = _assert_agent_trace(traced)
    assert first.attributes["tracemill.response.time_to_first_chunk_s"] >= 0
    assert second.attributes["tracemill.response.time_to_first_chunk_s"] >= 0


def test_sync_streamed_agent_run_records_the_same_trace(traced):
    graph = build_agent(ScriptedChatModel(messages=iter(_script())))

    updates = list(graph.stream({"messages": [("user", "1+2?")]}, stream_mode="updates"))

    assert [next(iter(u)) for u in updates] == ["agent", "tools", "agent"]
    _assert_agent_trace(traced)


def test_agent_run_inside_a_tracemill_run_joins_its_trace(traced):
    with tracemill.run("math", task_id="t-1") as run:
        build_agent(ScriptedChatModel(messages=iter(_script()))).invoke({"messages": [("user", "1+2?")]})

    (agent,) = _by_op(traced, "invoke_agent")
    assert agent.parent.span_id == traced.named("invoke_workflow math").context.span_id
    assert all(s.attributes["tracemill.task.id"] == "t-1" for s in _by_op(traced, "chat"))
    assert {s.context.trace_id for s in traced.finished} == {int(run.trace_id, 16)}


# --- chat model streams ---------------------------------------------------------------------


def test_model_stream_leaves_no_context_attached_while_the_caller_holds_a_chunk(traced):
    model = ScriptedChatModel(messages=iter([AIMessage(content="one two three")]))

    with tracemill.run("caller"):
        outer = trace.get_current_span()
        seen = [trace.get_current_span() for _ in model.stream("hi")]

    assert seen and all(span is outer for span in seen)
    (llm,) = _by_op(traced, "chat")
    assert _json(llm, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "one two three"}]


def test_model_stream_break_ends_llm_span_closed_early(traced):
    model = ScriptedChatModel(messages=iter([AIMessage(content="one two three")]))

    stream = model.stream("hi")
    next(stream)
    stream.close()

    (llm,) = _by_op(traced, "chat")
    assert llm.attributes["tracemill.closed_early"] is True
    assert llm.status.status_code is StatusCode.UNSET


def test_async_model_stream_records_one_llm_span(traced):
    model = ScriptedChatModel(messages=iter([AIMessage(content="one two")]))

    async def main():
        return [c.content async for c in model.astream("hi")]

    assert "".join(asyncio.run(main())) == "one two"
    (llm,) = _by_op(traced, "chat")
    assert _json(llm, "gen_ai.input.messages") == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]


# --- errors, chains, retrievers -------------------------------------------------------------


def test_failing_chain_marks_its_span_error_and_the_exception_reaches_the_caller(traced):
    def explode(_: Any) -> None:
        raise ValueError("no luck")

    chain = RunnableLambda(explode, name="explode")
    with pytest.raises(ValueError, match="no luck"):
        chain.invoke(1)

    span = traced.named("explode")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"


def test_failing_tool_marks_its_tool_span_error(traced):
    @tool
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    script = [AIMessage(content="", tool_calls=[{"name": "divide", "args": {"a": 1, "b": 0}, "id": "call_9"}]),
              AIMessage(content="cannot divide")]
    build_agent(ScriptedChatModel(messages=iter(script)), tools=[divide]).invoke({"messages": [("user", "1/0?")]})

    span = traced.named("execute_tool divide")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["gen_ai.tool.call.id"] == "call_9"


def test_chain_spans_record_input_and_output_and_nest_inner_calls(traced):
    @tracemill.step(name="inner")
    def inner(x: int) -> int:
        return x * 10

    chain = RunnableLambda(lambda x: x + 1, name="plus_one") | RunnableLambda(inner, name="times_ten")

    assert chain.invoke(1) == 20
    sequence = traced.named("RunnableSequence")
    assert _parent_name(traced, traced.named("plus_one")) == "RunnableSequence"
    assert traced.named("inner").parent.span_id == traced.named("times_ten").context.span_id
    assert json.loads(sequence.attributes["tracemill.input"]) == 1
    assert json.loads(sequence.attributes["tracemill.output"]) == 20


def test_retriever_run_records_a_retrieval_span_with_documents(traced):
    class Notes(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list:
            return [Document(page_content=f"note about {query}", metadata={"id": 1})]

    docs = Notes().invoke("cats")

    assert docs[0].page_content == "note about cats"
    span = traced.named("retrieval Notes")
    assert span.attributes["gen_ai.operation.name"] == "retrieval"
    assert json.loads(span.attributes["tracemill.input"]) == "cats"
    assert json.loads(span.attributes["tracemill.output"]) == [{"content": "note about cats", "metadata": {"id": 1}}]


def test_uninstrument_stops_langchain_spans(spans):
    tracemill.instrument("langchain")
    tracemill.uninstrument("langchain")

    build_agent(ScriptedChatModel(messages=iter(_script()))).invoke({"messages": [("user", "1+2?")]})

    assert [s.name for s in spans.finished] == ["remember"]



# --- ChatOpenAI with the OpenAI integration: one LLM span per provider call --------------------


@pytest.fixture
def chat_openai(openai_server):
    """A factory of ``ChatOpenAI`` models talking to the local server; their HTTP clients are closed after."""
    langchain_openai = pytest.importorskip("langchain_openai")
    import openai

    clients = []

    def make(**kwargs: Any) -> Any:
        sync_client, async_client = openai.DefaultHttpxClient(), openai.DefaultAsyncHttpxClient()
        clients.append((sync_client, async_client))
        return langchain_openai.ChatOpenAI(model="gpt-test", base_url=openai_server.base_url, api_key="test-key",
                                           max_retries=0, http_client=sync_client, http_async_client=async_client,
                                           **kwargs)

    yield make
    for sync_client, async_client in clients:
        sync_client.close()
        if not async_client.is_closed:  # an async test closes its client in its own event loop
            asyncio.run(async_client.aclose())


def _script_openai(server) -> None:
    server.reply(None, tool_calls=[("add", {"a": 1, "b": 2})], input_tokens=20, output_tokens=4)
    server.reply("the answer is 3", input_tokens=30, output_tokens=6)


def _assert_one_llm_span_per_request(spans, server):
    llm_spans = _by_op(spans, "chat")
    assert len(llm_spans) == len(server.requests) == 2
    wrappers = [s for s in spans.finished if s.name == "ChatOpenAI"]
    assert len(wrappers) == 2
    for llm in llm_spans:
        parent = next(s for s in wrappers if s.context.span_id == llm.parent.span_id)
        assert parent.attributes["tracemill.llm.delegated"] is True
        assert "gen_ai.operation.name" not in parent.attributes
        assert "gen_ai.usage.input_tokens" not in parent.attributes
        assert "gen_ai.output.messages" not in parent.attributes
        assert llm.attributes["server.address"] == "127.0.0.1"
    usage = sum(s.attributes.get("gen_ai.usage.input_tokens", 0) for s in spans.finished)
    assert usage == 50  # each request counted once
    first = min(llm_spans, key=lambda s: s.start_time)
    (tool_span,) = _by_op(spans, "execute_tool")
    call_id = _json(first, "gen_ai.output.messages")[0]["parts"][0]["id"]
    assert tool_span.attributes["gen_ai.tool.call.id"] == call_id
    assert [link.context.span_id for link in tool_span.links] == [first.context.span_id]


def test_chatopenai_agent_with_openai_integration_records_one_llm_span_per_request(
    spans, instrument, openai_server, chat_openai
):
    instrument("langchain", "openai")
    _script_openai(openai_server)

    result = build_agent(chat_openai()).invoke({"messages": [("user", "1+2?")]})

    assert result["messages"][-1].content == "the answer is 3"
    _assert_one_llm_span_per_request(spans, openai_server)


def test_async_streamed_chatopenai_agent_records_one_llm_span_per_request(
    spans, instrument, openai_server, chat_openai
):
    instrument("langchain", "openai")
    _script_openai(openai_server)
    model = chat_openai(streaming=True, stream_usage=True)

    async def main():
        graph = build_agent(model)
        try:
            return [c async for c, _ in graph.astream({"messages": [("user", "1+2?")]}, stream_mode="messages")]
        finally:
            await model.root_async_client.close()

    chunks = asyncio.run(main())

    assert "".join(c.content for c in chunks if isinstance(c, AIMessageChunk)) == "the answer is 3"
    assert all(r.get("stream") for r in openai_server.requests)
    _assert_one_llm_span_per_request(spans, openai_server)


def test_chatopenai_stream_records_one_llm_span_with_the_streamed_output(spans, instrument, openai_server, chat_openai):
    instrument("langchain", "openai")
    openai_server.reply("one two three")

    text = "".join(c.content for c in chat_openai().stream("count"))

    assert text == "one two three"
    (llm,) = _by_op(spans, "chat")
    assert _parent_name(spans, llm) == "ChatOpenAI"
    assert _json(llm, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "one two three"}]


V3_IS_BETA = pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")


@V3_IS_BETA
def test_chatopenai_v3_event_stream_records_one_llm_span_with_the_streamed_output(
    spans, instrument, openai_server, chat_openai
):
    instrument("langchain", "openai")
    openai_server.reply("one two three")

    stream = chat_openai().stream_events("count", version="v3")
    events = list(stream)

    assert events
    (llm,) = _by_op(spans, "chat")
    assert _parent_name(spans, llm) == "ChatOpenAI"
    assert _json(llm, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "one two three"}]


@V3_IS_BETA
def test_async_chatopenai_v3_event_stream_records_one_llm_span(spans, instrument, openai_server, chat_openai):
    instrument("langchain", "openai")
    openai_server.reply("one two three")
    model = chat_openai()

    async def main():
        try:
            stream = await model.astream_events("count", version="v3")
            return [event async for event in stream]
        finally:
            await model.root_async_client.close()

    assert asyncio.run(main())
    (llm,) = _by_op(spans, "chat")
    assert _parent_name(spans, llm) == "ChatOpenAI"


def test_chatopenai_without_the_openai_integration_is_recorded_by_langchain(spans, instrument, openai_server,
                                                                            chat_openai):
    instrument("langchain")
    _script_openai(openai_server)

    build_agent(chat_openai()).invoke({"messages": [("user", "1+2?")]})

    llm_spans = _by_op(spans, "chat")
    assert [s.name for s in llm_spans] == ["chat gpt-test", "chat gpt-test"]
    assert all(s.attributes["gen_ai.provider.name"] == "openai" for s in llm_spans)
    assert all("tracemill.llm.delegated" not in s.attributes for s in llm_spans)
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in llm_spans) == 50


def test_every_provider_request_inside_one_model_run_is_traced(spans, instrument, openai_server):
    """A custom model that makes two requests in one run: both are traced, neither is hidden."""
    import openai

    instrument("langchain", "openai")
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)

    class TwoCallModel(GenericFakeChatModel):
        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
            from langchain_core.outputs import ChatGeneration, ChatResult

            draft = client.chat.completions.create(model="drafter", messages=[{"role": "user", "content": "draft"}])
            final = client.chat.completions.create(model="editor", messages=[{"role": "user", "content": "edit"}])
            text = draft.choices[0].message.content + final.choices[0].message.content
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    try:
        TwoCallModel(messages=iter([])).invoke("go")
    finally:
        client.close()

    assert sorted(s.name for s in _by_op(spans, "chat")) == ["chat drafter", "chat editor"]
    (wrapper,) = [s for s in spans.finished if s.attributes.get("tracemill.llm.delegated")]
    assert {s.parent.span_id for s in _by_op(spans, "chat")} == {wrapper.context.span_id}


def test_provider_call_in_a_tool_is_its_own_llm_span(spans, instrument, openai_server):
    import openai

    instrument("langchain", "openai")
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)

    @tool
    def summarize(text: str) -> str:
        """Summarize text with a model."""
        return client.chat.completions.create(model="summarizer", messages=[{"role": "user", "content": text}]) \
            .choices[0].message.content

    script = [AIMessage(content="", tool_calls=[{"name": "summarize", "args": {"text": "long"}, "id": "call_s"}]),
              AIMessage(content="done")]
    try:
        build_agent(ScriptedChatModel(messages=iter(script)), tools=[summarize]).invoke({"messages": [("user", "?")]})
    finally:
        client.close()

    names = sorted(s.name for s in _by_op(spans, "chat"))
    assert names == ["chat generic-fake-chat-model", "chat generic-fake-chat-model", "chat summarizer"]
    assert _parent_name(spans, spans.named("chat summarizer")) == "execute_tool summarize"
