"""LlamaIndex span and event handlers (imported only by ``instrument``).

The span handler sees every method LlamaIndex's dispatcher wraps; it opens one OTel span per
LlamaIndex span and makes it current for the method's body (entered and exited in the same
frame, so the attach/detach pair stays in order):

- an LLM's ``chat``/``complete`` methods (sync, async, streaming) become GenAI LLM spans,
  filled from the ``LLMChat*``/``LLMCompletion*`` events; a streamed call ends when its end
  event arrives, on an error or early close, or when the unread stream is dropped;
- a tool's ``call``/``acall`` becomes an ``execute_tool`` span with the id of the call the
  agent is executing;
- a retriever's ``retrieve``/``aretrieve`` becomes a ``retrieval`` span;
- an agent's workflow run becomes ``invoke_agent {name}`` (any other workflow
  ``invoke_workflow``), its steps become step spans;
- other public methods become plain spans; private helpers (``_name``) get none.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import AsyncGenerator, Generator, Mapping
from contextvars import Token
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.tools.types import BaseTool
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span
from pydantic import PrivateAttr
from workflows import Workflow

from tracemill.integrations._llm import FrameworkLLMSpan, plain, tool_definitions
from tracemill.tracer import semconv
from tracemill.tracer.logs import log_once
from tracemill.tracer.manual import ToolCall
from tracemill.tracer.messages import Message, text_part, tool_call_part
from tracemill.tracer.spans import active_tracer, capture, capture_enabled, record_error, start_span

_CHAT_METHODS = {"chat", "achat", "stream_chat", "astream_chat"}
_COMPLETION_METHODS = {"complete", "acomplete", "stream_complete", "astream_complete"}
_TOOL_METHODS = {"call", "acall", "__call__"}
_RETRIEVER_METHODS = {"retrieve", "aretrieve"}
_UUID_SUFFIX = 37  # "-" + a uuid4


def _span_name(id_: str) -> str:
    return id_[:-_UUID_SUFFIX] if len(id_) > _UUID_SUFFIX and id_[-_UUID_SUFFIX] == "-" else id_


class _State:
    __slots__ = ("context", "kind", "llm", "messages", "output", "owner", "span", "streaming", "token", "tool",
                 "tool_call_id")

    def __init__(self, kind: str, context: otel_context.Context, span: Span | None) -> None:
        self.kind, self.context, self.span = kind, context, span
        self.token: Token[otel_context.Context] | None = None
        self.llm: FrameworkLLMSpan | None = None
        self.tool: ToolCall | None = None
        self.tool_call_id: str | None = None
        self.messages: Any = None  # (input messages, tools) from the start event
        self.output: Any = None  # the response from the end event
        self.streaming = False
        self.owner: Any = None  # the tool a tool span runs


# --- LlamaIndex messages to GenAI ---------------------------------------------------------------


def _role(message: Any) -> str:
    role = getattr(message, "role", "user")
    return str(getattr(role, "value", role))


def _tool_calls(message: Any) -> list[dict[str, Any]]:
    parts = []
    for block in getattr(message, "blocks", None) or ():
        if getattr(block, "block_type", None) == "tool_call":
            parts.append(tool_call_part(block.tool_call_id, block.tool_name, block.tool_kwargs))
    if not parts:  # integrations that keep the provider's tool calls in additional_kwargs
        for call in (getattr(message, "additional_kwargs", None) or {}).get("tool_calls") or ():
            call = plain(call)
            if isinstance(call, Mapping):
                function = call.get("function") or {}
                parts.append(tool_call_part(call.get("id"), function.get("name") or call.get("name") or "",
                                            function.get("arguments", call.get("arguments"))))
    return parts


def _genai_message(message: Any) -> Message:
    role = _role(message)
    extra = getattr(message, "additional_kwargs", None) or {}
    if role in ("tool", "function"):
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": extra.get("tool_call_id"),
                                            "response": message.content}]}
    parts: list[dict[str, Any]] = []
    for block in getattr(message, "blocks", None) or ():
        kind = getattr(block, "block_type", None)
        if kind == "text":
            if block.text:
                parts.append(text_part(block.text))
        elif kind not in (None, "tool_call"):
            parts.append({"type": kind})
    parts.extend(_tool_calls(message))
    return {"role": "assistant" if role in ("assistant", "model", "chatbot") else role, "parts": parts}


def _usage(response: Any) -> dict[str, Any]:
    extra = getattr(response, "additional_kwargs", None) or {}
    input_tokens = extra.get("prompt_tokens", extra.get("input_tokens"))
    output_tokens = extra.get("completion_tokens", extra.get("output_tokens"))
    if input_tokens is None:
        raw = getattr(response, "raw", None)
        usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
        usage = plain(usage)
        if isinstance(usage, Mapping):
            input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
            output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
    return {"input_tokens": input_tokens, "output_tokens": output_tokens}


def _llm_output(operation: str, response: Any) -> tuple[list[Message], dict[str, Any]]:
    if response is None:
        return [], {}
    if operation == semconv.OP_CHAT:
        message = _genai_message(response.message)
        if _tool_calls(response.message):
            message["finish_reason"] = "tool_calls"
        messages = [message]
    else:
        messages = [{"role": "assistant", "parts": [text_part(response.text or "")]}]
    raw = getattr(response, "raw", None)
    extra = _usage(response)
    extra["response_id"] = raw.get("id") if isinstance(raw, Mapping) else getattr(raw, "id", None)
    return messages, extra


def _provider(llm: Any) -> str:
    module = type(llm).__module__
    if module.startswith("llama_index.llms."):
        return module.split(".")[2]
    return "llama_index"


def _model(llm: Any) -> str:
    for name in ("model", "model_name"):
        value = getattr(llm, name, None)
        if isinstance(value, str) and value:
            return value
    model_name: str | None
    try:
        model_name = llm.metadata.model_name
    except Exception:
        model_name = None
    return model_name if model_name and model_name != "unknown" else type(llm).__name__


# --- handlers -----------------------------------------------------------------------------------


class TracemillSpanHandler(BaseSpanHandler[Any]):
    """One OTel span per LlamaIndex span; see the module docstring."""

    _states: dict[str, _State] = PrivateAttr(default_factory=dict)
    _active: bool = PrivateAttr(default=True)

    @classmethod
    def class_name(cls) -> str:
        return "TracemillSpanHandler"

    def deactivate(self) -> None:
        self._active = False

    def state(self, span_id: str | None) -> _State | None:
        return self._states.get(span_id) if span_id else None

    def _parent(self, parent_span_id: str | None) -> otel_context.Context:
        parent = self.state(parent_span_id)
        return parent.context if parent is not None else otel_context.get_current()

    def new_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None,
                 parent_span_id: str | None = None, tags: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not self._active:
            return None
        try:
            state = self._open(id_, bound_args, instance, parent_span_id)
            if state.span is not None:
                state.token = otel_context.attach(state.context)
            self._states[id_] = state
        except Exception:
            log_once("llama_index.new_span", "tracemill: could not start a span for a LlamaIndex call")
        return None

    def _open(self, id_: str, bound_args: inspect.BoundArguments, instance: Any,
              parent_span_id: str | None) -> _State:
        parent = self._parent(parent_span_id)
        name = _span_name(id_)
        method = name.rpartition(".")[2]
        tracer = active_tracer()
        if tracer is None or (method.startswith("_") and method not in _TOOL_METHODS):
            return _State("alias", parent, None)
        if isinstance(instance, BaseLLM) and (method in _CHAT_METHODS or method in _COMPLETION_METHODS):
            return _open_llm(instance, name, method, parent)
        if isinstance(instance, BaseTool) and method in _TOOL_METHODS:
            return self._open_tool(instance, bound_args, parent, parent_span_id)
        attributes: dict[str, Any] = {semconv.FRAMEWORK: "llama_index"}
        kind = "step"
        event = bound_args.arguments.get("ev")
        if isinstance(instance, BaseRetriever) and method in _RETRIEVER_METHODS:
            kind = "retriever"
            source = type(instance).__name__
            attributes.update({semconv.OPERATION_NAME: semconv.OP_RETRIEVAL, semconv.DATA_SOURCE_ID: source})
            name = f"{semconv.OP_RETRIEVAL} {source}"
            query = bound_args.arguments.get("str_or_query_bundle")
            if query is not None and capture_enabled():
                attributes[semconv.INPUT] = capture(semconv.INPUT, getattr(query, "query_str", query))
        elif isinstance(instance, Workflow) and method == "run":
            agent_name = getattr(instance, "name", None)
            is_agent = hasattr(instance, "tools") or type(instance).__name__ == "AgentWorkflow"
            operation = semconv.OP_INVOKE_AGENT if is_agent else semconv.OP_INVOKE_WORKFLOW
            label = agent_name if is_agent and isinstance(agent_name, str) else type(instance).__name__
            attributes[semconv.OPERATION_NAME] = operation
            if is_agent:
                attributes[semconv.AGENT_NAME] = label
            name, kind = f"{operation} {label}", "agent"
            start_event = bound_args.arguments.get("start_event")
            if start_event is not None and capture_enabled():
                attributes[semconv.INPUT] = capture(semconv.INPUT, start_event)
        elif event is not None and "ctx" in bound_args.arguments:  # a workflow step
            attributes[semconv.STEP_KIND] = "agent_step"
            name = method
            if capture_enabled():
                attributes[semconv.INPUT] = capture(semconv.INPUT, event)
        else:
            attributes[semconv.STEP_KIND] = "step"
        span = start_span(tracer, name, attributes=attributes, parent=parent)
        state = _State(kind, trace.set_span_in_context(span, parent), span)
        if event is not None and type(event).__name__ == "ToolCall":
            state.tool_call_id = getattr(event, "tool_id", None)
        return state

    def _open_tool(self, instance: Any, bound_args: inspect.BoundArguments, parent: Any,
                   parent_span_id: str | None) -> _State:
        """A tool's execution span (one per execution: ``__call__`` calling ``call`` of the same tool is one)."""
        parent_state = self.state(parent_span_id)
        if parent_state is not None and parent_state.kind == "tool" and parent_state.owner is instance:
            return _State("alias", parent, None)
        metadata = instance.metadata
        arguments = dict(bound_args.arguments.get("kwargs") or {})
        if not arguments and bound_args.arguments.get("args"):
            arguments = {"args": list(bound_args.arguments["args"])}
        tool = ToolCall(metadata.name or type(instance).__name__, parent=parent, arguments=arguments,
                        call_id=parent_state.tool_call_id if parent_state is not None else None,
                        description=next(iter((metadata.description or "").strip().splitlines()), None),
                        attributes={semconv.FRAMEWORK: "llama_index"})
        tool.start()
        state = _State("tool", trace.set_span_in_context(tool.span, parent) if tool.span else parent, tool.span)
        state.tool, state.owner = tool, instance
        return state

    @staticmethod
    def _detach(state: _State) -> None:
        if state.token is not None:
            if otel_context.get_current() is state.context:  # never detach out of order
                otel_context.detach(state.token)
            state.token = None

    def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None,
                             result: Any = None, **kwargs: Any) -> None:
        state = self._states.get(id_)
        if state is None:
            return None
        self._detach(state)
        try:
            if state.kind == "llm" and isinstance(result, (Generator, AsyncGenerator)):
                # The call goes on while the caller reads the stream: it ends with the end event,
                # an error or early close, or when the unread stream is dropped.
                state.streaming = True
                weakref.finalize(result, self._stream_dropped, id_)
                return None
            del self._states[id_]
            if state.kind == "llm":
                self._finish_llm(state)
            elif state.kind == "tool":
                tool = state.tool
                if tool is not None:
                    if getattr(result, "is_error", False):
                        tool.record_error(str(getattr(result, "content", result)), error_type="tool_error")
                    tool.record_result(getattr(result, "content", result))
                    tool.end()
            elif state.span is not None:
                output = result
                if state.kind == "retriever" and isinstance(result, list):
                    output = [{"content": n.node.get_content(), "score": n.score, "id": n.node.node_id}
                              for n in result]
                if output is not None and capture_enabled():
                    state.span.set_attribute(semconv.OUTPUT, capture(semconv.OUTPUT, output))
                state.span.end()
        except Exception:
            log_once("llama_index.exit", "tracemill: could not end a span for a LlamaIndex call")
            self._states.pop(id_, None)
            if state.span is not None and state.span.is_recording():
                state.span.end()
        return None

    def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None,
                             err: BaseException | None = None, **kwargs: Any) -> None:
        state = self._states.pop(id_, None)
        if state is None:
            return None
        self._detach(state)
        if state.kind == "llm":
            self._finish_llm(state, err)
        elif state.kind == "tool":
            if state.tool is not None:
                state.tool.end(err)
        elif state.span is not None:
            if err is not None:
                record_error(state.span, err)
            state.span.end()
        return None

    # --- LLM calls ----------------------------------------------------------------------------

    def on_llm_event(self, event: Any) -> None:
        kind = type(event).__name__
        state = self.state(event.span_id)
        if state is None or state.llm is None:
            return
        if kind in ("LLMChatStartEvent", "LLMCompletionStartEvent"):
            messages = event.messages if kind == "LLMChatStartEvent" else event.prompt
            state.messages = (messages, (event.additional_kwargs or {}).get("tools"))
        elif kind in ("LLMChatInProgressEvent", "LLMCompletionInProgressEvent"):
            state.llm.first_chunk()
            state.output = event.response
        elif kind in ("LLMChatEndEvent", "LLMCompletionEndEvent"):
            state.output = event.response
            if state.streaming:
                self._end_stream(event.span_id)
        elif kind == "ExceptionEvent" and state.streaming:
            self._end_stream(event.span_id, event.exception)

    def _end_stream(self, id_: str, exc: BaseException | None = None) -> None:
        state = self._states.pop(id_, None)
        if state is not None:
            self._finish_llm(state, exc)

    def _stream_dropped(self, id_: str) -> None:
        self._end_stream(id_, GeneratorExit())

    def _finish_llm(self, state: _State, exc: BaseException | None = None) -> None:
        llm = state.llm
        if llm is None:
            return
        closed_early = isinstance(exc, GeneratorExit)
        error = None if closed_early else exc
        try:
            if llm.slot.claimed:  # a provider integration recorded the call
                llm.end(closed_early=closed_early, exc=error)
                return
            if state.messages is not None:
                messages, tools = state.messages
                inputs = messages if isinstance(messages, str) else [_genai_message(m) for m in messages]
                llm.set_input(inputs, tool_definitions=tool_definitions(_tool_specs(tools)))
            output, extra = _llm_output(llm.operation, state.output)
        except Exception:
            log_once("llama_index.llm", "tracemill: could not record a LlamaIndex LLM call")
            output, extra = [], {}
        llm.end(output, closed_early=closed_early, exc=error, **extra)


def _tool_specs(tools: Any) -> list[Any] | None:
    if not tools:
        return None
    specs = []
    for tool in tools:
        metadata = getattr(tool, "metadata", None)
        if metadata is not None and hasattr(metadata, "to_openai_tool"):
            try:
                specs.append(metadata.to_openai_tool())
                continue
            except Exception:
                pass
        specs.append(tool)
    return specs


class TracemillEventHandler(BaseEventHandler):
    """Feeds LlamaIndex's LLM and retrieval events to the spans the span handler opened."""

    _spans: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "TracemillEventHandler"

    def bind(self, spans: TracemillSpanHandler) -> TracemillEventHandler:
        self._spans = spans
        return self

    def handle(self, event: Any, **kwargs: Any) -> None:
        spans = self._spans
        if spans is None or event.span_id is None:
            return
        try:
            spans.on_llm_event(event)
        except Exception:
            log_once("llama_index.event", "tracemill: could not record a LlamaIndex event")


def _open_llm(instance: Any, name: str, method: str, parent: Any) -> _State:
    """The LLM span of a chat or completion call of a LlamaIndex LLM."""
    operation = semconv.OP_CHAT if method in _CHAT_METHODS else semconv.OP_TEXT_COMPLETION
    llm = FrameworkLLMSpan(component=name, framework="llama_index", provider=_provider(instance),
                           model=_model(instance), operation=operation, parent=parent,
                           request={"temperature": getattr(instance, "temperature", None)})
    context = llm.start()
    state = _State("llm", context if context is not None else parent, llm.span)
    state.llm = llm
    return state
