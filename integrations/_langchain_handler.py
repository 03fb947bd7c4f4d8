"""The LangChain callback handler that turns runs into spans (imported only by ``instrument``).

Every run gets a span parented by its parent run's span (or by the current OTel context for a
root run): chat models and LLMs become GenAI LLM spans (see ``_llm`` for the one-span-per-call
rule), tools ``execute_tool`` spans carrying the model's tool call id, retrievers ``retrieval``
spans, a root LangGraph graph an ``invoke_agent`` span and other chains plain step spans. The
handler only creates and ends spans; making a run's span current while its body runs is the
job of the hooks in ``langchain.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import convert_to_openai_messages
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from tracemill.integrations._llm import FrameworkLLMSpan, tool_definitions
from tracemill.tracer import semconv
from tracemill.tracer.logs import log_once
from tracemill.tracer.manual import ToolCall
from tracemill.tracer.messages import Message, output_message, to_genai_message
from tracemill.tracer.spans import active_tracer, capture, capture_enabled, record_error, start_span

_MAX_OPEN_RUNS = 10_000
_HIDDEN_TAG = "langsmith:hidden"
# LangGraph signals interrupts and hand-offs with exceptions; they end a run without failing it.
_CONTROL_FLOW = ("GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand")
_AGENT_NAMES = ("AgentExecutor",)


class _Run:
    __slots__ = ("context", "kind", "llm", "messages", "span", "tool")

    def __init__(self, kind: str, context: otel_context.Context, span: Span | None = None) -> None:
        self.kind, self.context, self.span = kind, context, span
        self.llm: FrameworkLLMSpan | None = None
        self.tool: ToolCall | None = None
        self.messages: Any = None


class StreamScope:
    """Where a streaming model call's context lives between the steps of its generator.

    ``stream``/``astream`` hooks open one per call; the handler stores the LLM run's context
    in it when the run starts, and the hook attaches it around each step, never across a yield.
    """

    __slots__ = ("context", "token")

    def __init__(self) -> None:
        self.context: otel_context.Context | None = None
        self.token: Token[otel_context.Context] | None = None

    def resume(self) -> None:
        if self.context is not None:
            self.token = otel_context.attach(self.context)

    def leave(self) -> None:
        if self.token is not None:
            otel_context.detach(self.token)
            self.token = None


STREAM_SCOPE: ContextVar[StreamScope | None] = ContextVar("tracemill_langchain_stream_scope", default=None)


def _name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if name:
        return str(name)
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ids = serialized.get("id")
        if ids:
            return str(ids[-1])
    return default


def _closed_early(error: BaseException) -> bool:
    return isinstance(error, GeneratorExit)


def _control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW for cls in type(error).__mro__)


def _openai_messages(messages: Any) -> list[dict[str, Any]]:
    return convert_to_openai_messages(list(messages))


def _usage(message: Any, llm_output: Mapping[str, Any] | None) -> dict[str, Any]:
    usage = getattr(message, "usage_metadata", None)
    if usage:
        return {
            "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
            "cache_read_input_tokens": (usage.get("input_token_details") or {}).get("cache_read"),
            "reasoning_output_tokens": (usage.get("output_token_details") or {}).get("reasoning"),
        }
    token_usage = (llm_output or {}).get("token_usage") or (llm_output or {}).get("usage") or {}
    if isinstance(token_usage, Mapping) and token_usage:
        return {"input_tokens": token_usage.get("prompt_tokens", token_usage.get("input_tokens")),
                "output_tokens": token_usage.get("completion_tokens", token_usage.get("output_tokens"))}
    return {}


def _llm_output(response: Any) -> tuple[list[Message], dict[str, Any]]:
    """Output messages and ``record_output`` keywords (usage, response model/id) of an ``LLMResult``."""
    generations = response.generations[0] if getattr(response, "generations", None) else []
    llm_output = getattr(response, "llm_output", None) or {}
    messages: list[Message] = []
    extra: dict[str, Any] = {}
    for generation in generations:
        info = getattr(generation, "generation_info", None) or {}
        message = getattr(generation, "message", None)
        if message is not None:
            metadata = getattr(message, "response_metadata", None) or {}
            reason = info.get("finish_reason") or metadata.get("finish_reason") or metadata.get("stop_reason")
            converted = dict(_openai_messages([message])[0])
            if reason:
                converted["finish_reason"] = reason
            messages.append(to_genai_message(converted))
            if not extra:
                extra = _usage(message, llm_output)
                extra["response_model"] = metadata.get("model_name") or metadata.get("model") \
                    or llm_output.get("model_name")
                extra["response_id"] = metadata.get("id")
        else:
            messages.append(output_message(content=generation.text, finish_reason=info.get("finish_reason")))
    if not extra:
        extra = _usage(None, llm_output)
    return messages, extra


def _request(params: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    stop = metadata.get("ls_stop") or params.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    return {
        "temperature": params.get("temperature", metadata.get("ls_temperature")),
        "top_p": params.get("top_p"),
        "max_tokens": metadata.get("ls_max_tokens") or params.get("max_tokens") or params.get("max_completion_tokens"),
        "seed": params.get("seed"),
        "stop_sequences": list(stop) if isinstance(stop, Sequence) and stop else None,
    }


class TracemillCallbackHandler(BaseCallbackHandler):
    """Spans for LangChain runs. Added to every callback manager while instrumented."""

    run_inline = True  # called in the run's own context, never in a worker thread's copy
    raise_error = False
    active = True  # False after uninstrument(): managers created before may still hold the handler

    def __init__(self) -> None:
        self._runs: dict[UUID, _Run] = {}

    @property
    def ignore_llm(self) -> bool:
        return not self.active

    @property
    def ignore_chat_model(self) -> bool:
        return not self.active

    @property
    def ignore_chain(self) -> bool:
        return not self.active

    @property
    def ignore_agent(self) -> bool:  # tool events are filtered by this one
        return not self.active

    @property
    def ignore_retriever(self) -> bool:
        return not self.active

    # --- bookkeeping --------------------------------------------------------------------------

    def context_of(self, run_id: UUID | None) -> otel_context.Context | None:
        """The context a run's body should run in (its span current), if the run is known."""
        run = self._runs.get(run_id) if run_id is not None else None
        return run.context if run is not None else None

    def _parent(self, parent_run_id: UUID | None) -> otel_context.Context:
        context = self.context_of(parent_run_id)
        return context if context is not None else otel_context.get_current()

    def _store(self, run_id: UUID, run: _Run) -> None:
        runs = self._runs
        runs[run_id] = run
        if len(runs) > _MAX_OPEN_RUNS:  # runs whose end never came: end the oldest
            try:
                stale = runs.pop(next(iter(runs)))
            except (RuntimeError, StopIteration, KeyError):  # another thread changed the map meanwhile
                return
            if stale.span is not None:
                stale.span.set_attribute(semconv.CLOSED_EARLY, True)
                stale.span.end()

    def _start_step(self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: str,
                    attributes: dict[str, Any]) -> None:
        parent = self._parent(parent_run_id)
        tracer = active_tracer()
        if tracer is None:
            self._store(run_id, _Run("alias", parent))
            return
        span = start_span(tracer, name, attributes=attributes, parent=parent)
        self._store(run_id, _Run(kind, trace.set_span_in_context(span, parent), span))

    @staticmethod
    def _end_step(run: _Run | None, *, output: Any = None, error: BaseException | None = None) -> None:
        if run is None or run.span is None:
            return
        span = run.span
        try:
            if error is not None:
                if _closed_early(error):
                    span.set_attribute(semconv.CLOSED_EARLY, True)
                elif not _control_flow(error):
                    record_error(span, error)
            elif output is not None and capture_enabled():
                span.set_attribute(semconv.OUTPUT, capture(semconv.OUTPUT, output))
        except Exception:
            log_once("langchain.end", "tracemill: could not record the end of a LangChain run")
        span.end()

    # --- chains (and LangGraph graphs and nodes) ---------------------------------------------

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, tags: list[str] | None = None,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            if tags and _HIDDEN_TAG in tags:
                self._store(run_id, _Run("alias", self._parent(parent_run_id)))
                return
            name = _name(serialized, kwargs, "chain")
            metadata = metadata or {}
            root = parent_run_id is None or parent_run_id not in self._runs
            attributes: dict[str, Any] = {semconv.FRAMEWORK: "langchain"}
            if root and (metadata.get("ls_integration") == "langgraph" or name in _AGENT_NAMES):
                attributes[semconv.OPERATION_NAME] = semconv.OP_INVOKE_AGENT
                attributes[semconv.AGENT_NAME] = name
                span_name, kind = f"{semconv.OP_INVOKE_AGENT} {name}", "agent"
            else:
                attributes[semconv.STEP_KIND] = "chain"
                span_name, kind = name, "chain"
            for key in ("langgraph_node", "langgraph_step"):
                if key in metadata:
                    attributes[semconv.METADATA_PREFIX + key] = metadata[key]
            if inputs is not None and capture_enabled():
                attributes[semconv.INPUT] = capture(semconv.INPUT, inputs)
            self._start_step(run_id, parent_run_id, span_name, kind, attributes)
        except Exception:
            log_once("langchain.chain_start", "tracemill: could not start a span for a LangChain chain")

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_step(self._runs.pop(run_id, None), output=outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_step(self._runs.pop(run_id, None), error=error)

    # --- chat models and LLMs -----------------------------------------------------------------

    def _start_llm(self, serialized: dict[str, Any] | None, input_messages: Any, operation: str, *, run_id: UUID,
                   parent_run_id: UUID | None, metadata: dict[str, Any] | None, kwargs: Mapping[str, Any]) -> None:
        params = kwargs.get("invocation_params") or {}
        metadata = metadata or {}
        model = params.get("model") or params.get("model_name") or metadata.get("ls_model_name") \
            or params.get("_type") or ""
        parent = self._parent(parent_run_id)
        llm = FrameworkLLMSpan(
            component=_name(serialized, kwargs, "chat_model"), framework="langchain",
            provider=str(metadata.get("ls_provider") or "langchain"), model=str(model), operation=operation,
            parent=parent, request=_request(params, metadata),
        )
        context = llm.start()
        run = _Run("llm", context if context is not None else parent, llm.span)
        run.llm = llm
        run.messages = (input_messages, params.get("tools") or params.get("functions"))
        self._store(run_id, run)
        scope = STREAM_SCOPE.get()
        if context is not None and scope is not None and scope.context is None and kwargs.get("batch_size", 1) == 1:
            scope.context = context
            scope.resume()

    def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            self._start_llm(serialized, messages[0] if messages else [], semconv.OP_CHAT, run_id=run_id,
                            parent_run_id=parent_run_id, metadata=metadata, kwargs=kwargs)
        except Exception:
            log_once("langchain.llm_start", "tracemill: could not start a span for a LangChain chat model")

    def on_llm_start(self, serialized: dict[str, Any] | None, prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            self._start_llm(serialized, prompts[0] if prompts else None, semconv.OP_TEXT_COMPLETION, run_id=run_id,
                            parent_run_id=parent_run_id, metadata=metadata, kwargs=kwargs)
        except Exception:
            log_once("langchain.llm_start", "tracemill: could not start a span for a LangChain LLM")

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.llm is not None:
            run.llm.first_chunk()

    def _set_llm_input(self, run: _Run) -> None:
        if run.llm is None:
            return
        messages, tools = run.messages
        if isinstance(messages, str):  # a text LLM's prompt
            converted: Any = messages
        else:
            converted = _openai_messages(messages)
        run.llm.set_input(converted, tool_definitions=tool_definitions(tools))

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.llm is None:
            return
        try:
            if run.llm.slot.claimed:  # a provider integration recorded the call
                run.llm.end()
                return
            self._set_llm_input(run)
            messages, extra = _llm_output(response)
        except Exception:
            log_once("langchain.llm_end", "tracemill: could not record a LangChain model's output")
            messages, extra = [], {}
        run.llm.end(messages, **extra)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.llm is None:
            return
        try:
            if not run.llm.slot.claimed:
                self._set_llm_input(run)
        except Exception:
            log_once("langchain.llm_error", "tracemill: could not record a LangChain model's input")
        if _closed_early(error):
            run.llm.end(closed_early=True)
        else:
            run.llm.end(exc=error)

    # --- tools --------------------------------------------------------------------------------

    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, tags: list[str] | None = None,
                      metadata: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        try:
            parent = self._parent(parent_run_id)
            name = (serialized or {}).get("name") or _name(None, kwargs, "tool")
            tool = ToolCall(name, call_id=kwargs.get("tool_call_id"), parent=parent,
                            arguments=inputs if inputs is not None else input_str,
                            description=(serialized or {}).get("description") or None,
                            attributes={semconv.FRAMEWORK: "langchain"})
            tool.start()
            context = trace.set_span_in_context(tool.span, parent) if tool.span is not None else parent
            run = _Run("tool", context, tool.span)
            run.tool = tool
            self._store(run_id, run)
        except Exception:
            log_once("langchain.tool_start", "tracemill: could not start a span for a LangChain tool")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.tool is None:
            return
        tool = run.tool
        try:
            content = getattr(output, "content", output)  # a ToolMessage, or the raw return value
            if getattr(output, "status", None) == "error":
                tool.record_error(str(content), error_type="tool_error")
            tool.record_result(content)
        except Exception:
            log_once("langchain.tool_end", "tracemill: could not record a LangChain tool's result")
        tool.end()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is not None and run.tool is not None:
            run.tool.end(None if _control_flow(error) or _closed_early(error) else error)

    # --- retrievers ---------------------------------------------------------------------------

    def on_retriever_start(self, serialized: dict[str, Any] | None, query: str, *, run_id: UUID,
                           parent_run_id: UUID | None = None, tags: list[str] | None = None,
                           metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            name = _name(serialized, kwargs, "retriever")
            attributes: dict[str, Any] = {semconv.OPERATION_NAME: semconv.OP_RETRIEVAL,
                                          semconv.DATA_SOURCE_ID: name, semconv.FRAMEWORK: "langchain"}
            if capture_enabled():
                attributes[semconv.INPUT] = capture(semconv.INPUT, query)
            self._start_step(run_id, parent_run_id, f"{semconv.OP_RETRIEVAL} {name}", "retriever", attributes)
        except Exception:
            log_once("langchain.retriever_start", "tracemill: could not start a span for a LangChain retriever")

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        output = [{"content": getattr(d, "page_content", d), "metadata": getattr(d, "metadata", None)}
                  for d in documents or ()]
        self._end_step(self._runs.pop(run_id, None), output=output)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_step(self._runs.pop(run_id, None), error=error)
