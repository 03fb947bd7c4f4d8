"""Record an LLM call or a tool call by hand, for code no integration covers.

Both are context managers (sync and async) and also have ``start()``/``end()`` for calls that
outlive a block, such as a stream consumed later. Every method is safe to call when tracing is
off and never raises; ``end()`` runs once however often it is called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from tracemill.tracer import semconv
from tracemill.tracer.causality import TOOL_CALLS
from tracemill.tracer.logs import log_once
from tracemill.tracer.messages import Message, output_message, parse_arguments, to_genai_messages, tool_calls_of
from tracemill.tracer.run_io import RunIO, current_run_io
from tracemill.tracer.spans import active_tracer, capture, capture_enabled, end_span, record_error, start_span
from tracemill.tracer.tools.schema import definition_parameters
from tracemill.tracer.versions.config_version import (
    CONFIG_VERSION,
    PROMPT_NAME,
    PROMPT_VERSION,
    cached_version,
    current_prompt,
)


class _ManualSpan:
    """Lifecycle shared by :class:`LLMCall` and :class:`ToolCall`."""

    span: Span | None = None
    _token: Token[otel_context.Context] | None = None
    _ended = False

    def _open(self) -> Span | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> _ManualSpan:
        """Start the span without making it current (for calls that outlive a block)."""
        if self.span is None and not self._ended:
            try:
                self.span = self._open()
            except Exception:
                log_once(f"manual.start:{type(self).__name__}", "tracemill: could not start a %s span",
                         type(self).__name__)
        return self

    def __enter__(self) -> Any:
        self.start()
        if self.span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.end(exc)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.end(exc)

    @property
    def span_context(self) -> SpanContext | None:
        return self.span.get_span_context() if self.span is not None else None

    def set_attribute(self, key: str, value: Any) -> None:
        if self.span is not None and value is not None:
            try:
                self.span.set_attribute(key, value)
            except Exception:
                log_once("manual.set_attribute", "tracemill: could not set attribute %s", key)

    def record_error(self, error: BaseException | str, *, error_type: str | None = None) -> None:
        """Mark the call failed: an exception, or a message (e.g. an error the tool returned)."""
        if self.span is None:
            return
        if isinstance(error, BaseException):
            record_error(self.span, error)
            return
        self.span.set_attribute(semconv.ERROR_TYPE, error_type or "tool_error")
        self.span.set_status(Status(StatusCode.ERROR, error))

    def end(self, exc: BaseException | None = None) -> None:
        """End the span once; an exception given here is recorded first."""
        if self._ended:
            return
        self._ended = True
        if self.span is not None:
            end_span(self.span, exc)
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None


class LLMCall(_ManualSpan):
    """One request to a model: a ``{operation} {model}`` CLIENT span with GenAI attributes.

    ``input_messages`` may be OpenAI-style chat messages, GenAI-format messages, or a string;
    they are recorded in the GenAI format. ``record_output`` records what the model chose.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        operation: str = semconv.OP_CHAT,
        input_messages: Any = None,
        system_instructions: str | Sequence[Any] | None = None,
        tool_definitions: Sequence[Mapping[str, Any]] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop_sequences: Sequence[str] | None = None,
        conversation_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: otel_context.Context | None = None,
        prompt_name: str | None = None,
        prompt_version: str | int | None = None,
    ) -> None:
        self.provider, self.model, self.operation = provider, model, operation
        self._prompt = (prompt_name, None if prompt_version is None else str(prompt_version))
        self._input = (input_messages, system_instructions, tool_definitions)
        self._request = {
            semconv.REQUEST_TEMPERATURE: temperature, semconv.REQUEST_TOP_P: top_p,
            semconv.REQUEST_MAX_TOKENS: max_tokens, semconv.REQUEST_SEED: seed,
            semconv.REQUEST_STOP_SEQUENCES: list(stop_sequences) if stop_sequences else None,
            semconv.CONVERSATION_ID: conversation_id,
        }
        self._extra = dict(attributes or {})
        self._parent = parent
        self._run_io: RunIO | None = None

    def _open(self) -> Span | None:
        tracer = active_tracer()
        if tracer is None:
            return None
        self._run_io = current_run_io(self._parent)
        name = f"{self.operation} {self.model}" if self.model else self.operation
        return start_span(tracer, name, kind=SpanKind.CLIENT, attributes=self.start_attributes(), parent=self._parent)

    def start_attributes(self) -> dict[str, Any]:
        """The attributes the span starts with: operation, provider, request parameters and inputs.

        Integrations that open a framework's span before knowing whether it is the call of record
        use this to give that span the same attributes later.
        """
        attributes: dict[str, Any] = {
            semconv.OPERATION_NAME: self.operation,
            semconv.PROVIDER_NAME: self.provider,
            semconv.REQUEST_MODEL: self.model,
        }
        attributes.update((k, v) for k, v in self._request.items() if v is not None)
        messages, system, tools = self._input
        if capture_enabled():
            if messages is not None:
                attributes[semconv.INPUT_MESSAGES] = capture(semconv.INPUT_MESSAGES, to_genai_messages(messages))
            if system is not None:
                parts = [{"type": "text", "content": system}] if isinstance(system, str) else list(system)
                attributes[semconv.SYSTEM_INSTRUCTIONS] = capture(semconv.SYSTEM_INSTRUCTIONS, parts)
            if tools:
                attributes[semconv.TOOL_DEFINITIONS] = capture(semconv.TOOL_DEFINITIONS, list(tools))
        attributes.update(self._extra)
        self._add_version(attributes)
        return attributes

    def _add_version(self, attributes: dict[str, Any]) -> None:
        """The configuration version (hashed once per distinct configuration) and the prompt's name."""
        try:
            messages, system, tools = self._input
            attributes[CONFIG_VERSION] = cached_version(
                provider=self.provider, model=self.model, system_instructions=system, messages=messages,
                tools=tools, params=attributes,
            )
            name, version = self._prompt if self._prompt[0] else (current_prompt() or (None, None))
            if name:
                attributes[PROMPT_NAME] = name
                if version is not None:
                    attributes[PROMPT_VERSION] = version
        except Exception:
            log_once("llm.config_version", "tracemill: could not compute an LLM call's configuration version")

    def record_output(
        self,
        messages: Sequence[Message] | Message | None = None,
        *,
        content: str | None = None,
        tool_calls: Sequence[Mapping[str, Any]] = (),
        finish_reasons: Sequence[str] | None = None,
        response_model: str | None = None,
        response_id: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        reasoning_output_tokens: int | None = None,
    ) -> None:
        """Record the model's answer: messages (or ``content`` + ``tool_calls``), usage, response ids.

        Tool calls in the output are remembered so the tool spans that execute them get their
        ``gen_ai.tool.call.id`` and a link back to this span.
        """
        span = self.span
        if span is None:
            return
        try:
            if messages is None and (content is not None or tool_calls):
                reason = finish_reasons[0] if finish_reasons else None
                messages = [output_message(content=content, tool_calls=tool_calls, finish_reason=reason)]
            normalized = to_genai_messages(messages) if messages is not None else []
            if normalized and capture_enabled():
                span.set_attribute(semconv.OUTPUT_MESSAGES, capture(semconv.OUTPUT_MESSAGES, normalized))
            if finish_reasons is None:
                finish_reasons = [m["finish_reason"] for m in normalized if m.get("finish_reason")]
            for key, value in (
                (semconv.RESPONSE_FINISH_REASONS, list(finish_reasons) or None),
                (semconv.RESPONSE_MODEL, response_model), (semconv.RESPONSE_ID, response_id),
                (semconv.USAGE_INPUT_TOKENS, input_tokens), (semconv.USAGE_OUTPUT_TOKENS, output_tokens),
                (semconv.USAGE_CACHE_READ_INPUT_TOKENS, cache_read_input_tokens),
                (semconv.USAGE_REASONING_OUTPUT_TOKENS, reasoning_output_tokens),
            ):
                if value is not None:
                    span.set_attribute(key, value)
            calls = tool_calls_of(normalized)
            if calls:
                TOOL_CALLS.register(span.get_span_context(), calls, self._tool_parameters(calls))
            run_io = self._run_io or current_run_io()  # a framework's call sets the span without _open
            if normalized and run_io is not None:
                run_io.llm_answered(normalized)
        except Exception:
            log_once("llm.record_output", "tracemill: could not record an LLM call's output")

    def _tool_parameters(self, calls: list[tuple[str | None, str]]) -> dict[str, str]:
        """The parameter schemas this call's tool definitions give for the tools it called (captured)."""
        definitions = self._input[2]
        if not definitions or not capture_enabled():
            return {}
        found = {name: definition_parameters(definitions, name) for _, name in calls}
        return {name: capture(semconv.TOOL_PARAMETERS, schema) for name, schema in found.items() if schema is not None}


class ToolCall(_ManualSpan):
    """One tool execution: an ``execute_tool {name}`` span.

    With ``call_id`` (the id the model gave the call) the span links to the LLM span that asked
    for it; without one, it takes the oldest unclaimed call of the same tool in the same trace.
    """

    def __init__(
        self,
        name: str,
        *,
        call_id: str | None = None,
        arguments: Any = None,
        description: str | None = None,
        tool_type: str = "function",
        attributes: Mapping[str, Any] | None = None,
        parent: otel_context.Context | None = None,
    ) -> None:
        self.name, self.call_id, self._arguments = name, call_id, arguments
        self._static = {semconv.TOOL_TYPE: tool_type, semconv.TOOL_DESCRIPTION: description, **(attributes or {})}
        self._parent = parent

    def _open(self) -> Span | None:
        tracer = active_tracer()
        if tracer is None:
            return None
        attributes: dict[str, Any] = {semconv.OPERATION_NAME: semconv.OP_EXECUTE_TOOL, semconv.TOOL_NAME: self.name}
        attributes.update((k, v) for k, v in self._static.items() if v is not None)
        if self._arguments is not None and capture_enabled():
            attributes[semconv.TOOL_CALL_ARGUMENTS] = capture(
                semconv.TOOL_CALL_ARGUMENTS, parse_arguments(self._arguments)
            )
        trace_id = trace.get_current_span(self._parent).get_span_context().trace_id
        call_id, llm_span, schema = TOOL_CALLS.claim(trace_id, self.name, self.call_id)
        if call_id:
            self.call_id = call_id
            attributes[semconv.TOOL_CALL_ID] = call_id
        if schema is not None:
            attributes[semconv.TOOL_PARAMETERS] = schema
        links = [Link(llm_span)] if llm_span is not None else None
        return start_span(tracer, f"{semconv.OP_EXECUTE_TOOL} {self.name}", attributes=attributes, links=links,
                          parent=self._parent)

    def record_result(self, result: Any) -> None:
        """Record what the tool returned (as JSON, within the byte budget)."""
        if self.span is not None and capture_enabled():
            try:
                self.span.set_attribute(semconv.TOOL_CALL_RESULT, capture(semconv.TOOL_CALL_RESULT, result))
            except Exception:
                log_once("tool.record_result", "tracemill: could not record a tool result")


def llm_call(
    *,
    provider: str,
    model: str,
    operation: str = semconv.OP_CHAT,
    input_messages: Any = None,
    system_instructions: str | Sequence[Any] | None = None,
    tool_definitions: Sequence[Mapping[str, Any]] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    stop_sequences: Sequence[str] | None = None,
    conversation_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    parent: otel_context.Context | None = None,
    prompt_name: str | None = None,
    prompt_version: str | int | None = None,
) -> LLMCall:
    """Record one LLM request; see :class:`LLMCall` for the arguments.

    ``prompt_name``/``prompt_version`` name the prompt (``gen_ai.prompt.*``); without them the
    innermost ``tracemill.prompt(name, version)`` block names it. Every call records
    ``tracemill.config.version``, a content hash of its system text, tools, model and parameters.
    """
    return LLMCall(
        provider=provider, model=model, operation=operation, input_messages=input_messages,
        system_instructions=system_instructions, tool_definitions=tool_definitions, temperature=temperature,
        top_p=top_p, max_tokens=max_tokens, seed=seed, stop_sequences=stop_sequences,
        conversation_id=conversation_id, attributes=attributes, parent=parent, prompt_name=prompt_name,
        prompt_version=prompt_version,
    )


def tool_call(
    name: str,
    *,
    call_id: str | None = None,
    arguments: Any = None,
    description: str | None = None,
    tool_type: str = "function",
    attributes: Mapping[str, Any] | None = None,
    parent: otel_context.Context | None = None,
) -> ToolCall:
    """Record one tool execution; see :class:`ToolCall` for the arguments."""
    return ToolCall(name, call_id=call_id, arguments=arguments, description=description, tool_type=tool_type,
                    attributes=attributes, parent=parent)
