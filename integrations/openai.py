"""The ``openai`` package: Chat Completions and Responses calls as GenAI ``chat`` spans.

``chat.completions.create``/``.parse`` and ``responses.create``/``.parse`` are wrapped with
``wrapt`` on the sync and async resource classes, so every client sees them: ``OpenAI``,
``AsyncOpenAI``, Azure, and clients pointed at any OpenAI-compatible server through
``base_url`` (the provider name follows the host). ``with_raw_response`` goes through the same
methods, and ``chat.completions.stream``/``responses.stream`` through ``create``.

A streamed call's span ends when the stream ends, however it ends (see ``_streams``), with the
output accumulated so far. Errors end the span with status Error and ``error.type``, and reach
the caller unchanged. Inside a framework's LLM run (LangChain, LlamaIndex) this call's span is
the call of record (see ``_llm``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace

from tracemill.integrations._llm import claim_llm_slot, plain, tool_definitions
from tracemill.integrations._streams import TracedAsyncStream, TracedStream
from tracemill.tracer import semconv
from tracemill.tracer.logs import log_once
from tracemill.tracer.manual import LLMCall
from tracemill.tracer.messages import Message, output_message, text_part, to_genai_message, tool_call_part
from tracemill.tracer.runtime import RUNTIME

_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"
# (module, class, method, API): the methods that send one model request.
_TARGETS = (
    (_CHAT_MODULE, "Completions", "create", "chat"),
    (_CHAT_MODULE, "Completions", "parse", "chat"),
    (_CHAT_MODULE, "AsyncCompletions", "create", "chat"),
    (_CHAT_MODULE, "AsyncCompletions", "parse", "chat"),
    (_RESPONSES_MODULE, "Responses", "create", "responses"),
    (_RESPONSES_MODULE, "Responses", "parse", "responses"),
    (_RESPONSES_MODULE, "AsyncResponses", "create", "responses"),
    (_RESPONSES_MODULE, "AsyncResponses", "parse", "responses"),
)

# Hosts of OpenAI-compatible services with a GenAI provider name of their own.
_HOST_PROVIDERS = {
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.perplexity.ai": "perplexity",
    "api.x.ai": "x_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
}

_originals: dict[tuple[type, str], Any] = {}
_sdk: dict[str, Any] = {}  # SDK classes looked up once at instrument() time


# --- requests ---------------------------------------------------------------------------------


def _given(value: Any) -> bool:
    return value is not None and not isinstance(value, _sdk["unset"])


def _server(instance: Any) -> tuple[str, dict[str, Any]]:
    """The provider name and server attributes for the client behind a resource."""
    attributes: dict[str, Any] = {}
    provider = "openai"
    try:
        client = instance._client
        url = client.base_url
        host, port = url.host, url.port
        if host:
            attributes[semconv.SERVER_ADDRESS] = host
            if port:
                attributes[semconv.SERVER_PORT] = port
        if isinstance(client, _sdk["azure"]) or host.endswith(".openai.azure.com"):
            provider = "azure.ai.openai"
        else:
            provider = _HOST_PROVIDERS.get(host, "openai")
    except Exception:
        log_once("openai.server", "tracemill: could not read the OpenAI client's base URL")
    return provider, attributes


def _chat_messages(messages: Any) -> Any:
    if messages is None or isinstance(messages, (str, Mapping)):
        return messages
    return [plain(m) for m in messages]


def _responses_input(value: Any) -> list[Message] | None:
    """Responses API ``input`` (a string or a list of items) as GenAI messages."""
    if not _given(value):
        return None
    if isinstance(value, str):
        return [{"role": "user", "parts": [text_part(value)]}]
    messages: list[Message] = []
    for item in value:
        item = plain(item)
        if not isinstance(item, Mapping):
            messages.append(to_genai_message(item))
            continue
        kind = item.get("type")
        if kind == "function_call":
            messages.append({"role": "assistant", "parts": [
                tool_call_part(item.get("call_id"), item.get("name", ""), item.get("arguments"))]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "parts": [
                {"type": "tool_call_response", "id": item.get("call_id"), "response": item.get("output")}]})
        elif "role" in item:
            messages.append(to_genai_message({"role": item["role"], "content": item.get("content")}))
        else:
            messages.append({"role": "user", "parts": [dict(item)]})
    return messages


def _stop_sequences(stop: Any) -> list[str] | None:
    if not _given(stop):
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def _begin(api: str, instance: Any, kwargs: Mapping[str, Any]) -> LLMCall | None:
    """Start the span of one request; None when tracing is off or the span could not start."""
    try:
        get = kwargs.get
        model = get("model")
        model = str(model) if _given(model) else ""
        provider, extra = _server(instance)
        for key, name in ((semconv.REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
                          (semconv.REQUEST_PRESENCE_PENALTY, "presence_penalty"),
                          (semconv.REQUEST_CHOICE_COUNT, "n")):
            value = get(name)
            if _given(value):
                extra[key] = value
        tools = get("tools")
        tools = tool_definitions(tools) if _given(tools) else None
        seed, temperature, top_p = (v if _given(v) else None for v in (get("seed"), get("temperature"), get("top_p")))
        if api == "chat":
            max_tokens = get("max_completion_tokens")
            if not _given(max_tokens):
                max_tokens = get("max_tokens")
            messages = get("messages")
            call = LLMCall(provider=provider, model=model, input_messages=_chat_messages(messages) if _given(messages)
                           else None, tool_definitions=tools, temperature=temperature, top_p=top_p,
                           max_tokens=max_tokens if _given(max_tokens) else None, seed=seed,
                           stop_sequences=_stop_sequences(get("stop")), attributes=extra)
        else:
            max_tokens = get("max_output_tokens")
            instructions = get("instructions")
            call = LLMCall(provider=provider, model=model, input_messages=_responses_input(get("input")),
                           system_instructions=instructions if _given(instructions) else None,
                           tool_definitions=tools, temperature=temperature, top_p=top_p,
                           max_tokens=max_tokens if _given(max_tokens) else None, attributes=extra)
        call.start()
        if call.span is None:
            return None
        claim_llm_slot()  # inside a framework's LLM run, this request is the call of record; see _llm
        return call
    except Exception:
        log_once("openai.begin", "tracemill: could not start an OpenAI span; the call runs untraced")
        return None


# --- responses --------------------------------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    input_tokens = getattr(usage, "prompt_tokens", None)
    output_tokens = getattr(usage, "completion_tokens", None)
    input_details = getattr(usage, "prompt_tokens_details", None)
    output_details = getattr(usage, "completion_tokens_details", None)
    if input_tokens is None:  # Responses API names
        input_tokens = getattr(usage, "input_tokens", None)
        output_tokens = getattr(usage, "output_tokens", None)
        input_details = getattr(usage, "input_tokens_details", None)
        output_details = getattr(usage, "output_tokens_details", None)
    return {
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_read_input_tokens": getattr(input_details, "cached_tokens", None),
        "reasoning_output_tokens": getattr(output_details, "reasoning_tokens", None),
    }


def _tool_call(call: Any) -> dict[str, Any]:
    function = getattr(call, "function", None)
    if function is not None:
        return {"id": call.id, "name": function.name, "arguments": function.arguments}
    custom = getattr(call, "custom", None)  # custom tools take free-form input
    return {"id": getattr(call, "id", None), "name": getattr(custom, "name", ""),
            "arguments": getattr(custom, "input", None)}


def _record_chat_completion(call: LLMCall, completion: Any) -> None:
    messages = []
    for choice in getattr(completion, "choices", None) or ():
        message = choice.message
        messages.append(output_message(
            content=message.content or getattr(message, "refusal", None),
            tool_calls=[_tool_call(c) for c in message.tool_calls or ()],
            finish_reason=choice.finish_reason,
        ))
    call.record_output(messages, response_model=getattr(completion, "model", None),
                       response_id=getattr(completion, "id", None), **_usage(getattr(completion, "usage", None)))


def _response_parts(items: Any) -> tuple[list[dict[str, Any]], bool]:
    """GenAI parts of a Responses API ``output`` list, and whether it asks for tool calls."""
    parts: list[dict[str, Any]] = []
    wants_tools = False
    for item in items or ():
        kind = getattr(item, "type", None)
        if kind == "message":
            for content in item.content or ():
                text = getattr(content, "text", None) or getattr(content, "refusal", None)
                if text:
                    parts.append(text_part(text))
        elif kind == "function_call":
            wants_tools = True
            parts.append(tool_call_part(item.call_id, item.name, item.arguments))
        elif kind == "custom_tool_call":
            wants_tools = True
            parts.append(tool_call_part(item.call_id, item.name, item.input))
    return parts, wants_tools


_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _record_response(call: LLMCall, response: Any) -> None:
    parts, wants_tools = _response_parts(getattr(response, "output", None))
    status = getattr(response, "status", None)
    if status == "incomplete":
        reason = getattr(getattr(response, "incomplete_details", None), "reason", None)
        finish = _INCOMPLETE_REASONS.get(reason or "", reason or "incomplete")
    elif status == "failed":
        finish = "error"
    else:
        finish = "tool_calls" if wants_tools else "stop"
    message: Message = {"role": "assistant", "parts": parts, "finish_reason": finish}
    call.record_output([message], response_model=getattr(response, "model", None),
                       response_id=getattr(response, "id", None), **_usage(getattr(response, "usage", None)))
    error = getattr(response, "error", None)
    if status == "failed" and error is not None:
        call.record_error(getattr(error, "message", None) or "response failed",
                          error_type=getattr(error, "code", None) or "response_failed")


class _ChatStream:
    """Accumulates Chat Completions chunks into the messages they spell."""

    __slots__ = ("choices", "id", "model", "usage")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        if self.id is None:
            self.id, self.model = getattr(chunk, "id", None), getattr(chunk, "model", None)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            state = self.choices.get(choice.index)
            if state is None:
                state = self.choices[choice.index] = {"text": [], "tools": {}, "finish": None}
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    state["text"].append(delta.content)
                for tool in delta.tool_calls or ():
                    slot = state["tools"].get(tool.index)
                    if slot is None:
                        slot = state["tools"][tool.index] = {"id": None, "name": "", "arguments": []}
                    if tool.id:
                        slot["id"] = tool.id
                    function = tool.function
                    if function is not None:
                        if function.name and not slot["name"]:
                            slot["name"] = function.name
                        if function.arguments:
                            slot["arguments"].append(function.arguments)
            if choice.finish_reason:
                state["finish"] = choice.finish_reason

    def record(self, call: LLMCall) -> None:
        messages = [
            output_message(
                content="".join(state["text"]) or None,
                tool_calls=[{"id": t["id"], "name": t["name"], "arguments": "".join(t["arguments"])}
                            for _, t in sorted(state["tools"].items())],
                finish_reason=state["finish"],
            )
            for _, state in sorted(self.choices.items())
        ]
        call.record_output(messages, response_model=self.model, response_id=self.id, **_usage(self.usage))


class _ResponsesStream:
    """Accumulates Responses API stream events; the final ``response.*`` event has it all."""

    __slots__ = ("error", "final", "items", "text")

    def __init__(self) -> None:
        self.final: Any = None
        self.items: dict[int, Any] = {}
        self.text: dict[int, list[str]] = {}
        self.error: Any = None

    def add(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = event.response
        elif kind == "response.output_text.delta":
            self.text.setdefault(event.output_index, []).append(event.delta)
        elif kind == "response.output_item.done":
            self.items[event.output_index] = event.item
        elif kind == "error":
            self.error = event

    def record(self, call: LLMCall) -> None:
        if self.final is not None:
            _record_response(call, self.final)
        else:  # the stream ended early: what arrived so far
            parts, _ = _response_parts(item for _, item in sorted(self.items.items()))
            for index, chunks in sorted(self.text.items()):
                if index not in self.items:
                    parts.append(text_part("".join(chunks)))
            if parts:
                call.record_output([{"role": "assistant", "parts": parts}])
        if self.error is not None:
            call.record_error(getattr(self.error, "message", None) or "stream error",
                              error_type=getattr(self.error, "code", None) or "stream_error")


class _StreamRecorder:
    """Feeds a stream's chunks to an accumulator; records it and ends the span once."""

    __slots__ = ("accumulator", "call", "started")

    def __init__(self, call: LLMCall, accumulator: Any, started: float) -> None:
        self.call, self.accumulator, self.started = call, accumulator, started

    def add(self, chunk: Any) -> None:
        if self.started:
            self.call.set_attribute(semconv.TIME_TO_FIRST_CHUNK, time.monotonic() - self.started)
            self.started = 0.0
        self.accumulator.add(chunk)

    def finish(self, exc: BaseException | None, closed_early: bool) -> None:
        try:
            self.accumulator.record(self.call)
            if closed_early:
                self.call.set_attribute(semconv.CLOSED_EARLY, True)
        finally:
            _end(self.call, exc)


def _end(call: LLMCall, exc: BaseException | None = None) -> None:
    if exc is not None:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            call.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
    call.end(exc)


def _complete(api: str, call: LLMCall, result: Any, streaming: bool, started: float) -> Any:
    """Record a returned result (or hand the span to a stream proxy); returns what the caller gets."""
    try:
        raw = isinstance(result, _sdk["raw"])
        if streaming:
            stream = result.parse() if raw else result
            if not isinstance(stream, (_sdk["stream"], _sdk["async_stream"])):
                _end(call)
                return result
            accumulator = _ChatStream() if api == "chat" else _ResponsesStream()
            recorder = _StreamRecorder(call, accumulator, started)
            proxy_type = TracedStream if isinstance(stream, _sdk["stream"]) else TracedAsyncStream
            proxy = proxy_type(stream, recorder)
            return _RawStreamResponse(result, proxy) if raw else proxy
        if raw:
            parsed = result.parse()  # cached: the caller's own parse() returns the same object
        elif isinstance(result, _sdk["model"]):
            parsed = result
        else:  # e.g. with_streaming_response: the body is the caller's to read
            _end(call)
            return result
        if api == "chat":
            _record_chat_completion(call, parsed)
        else:
            _record_response(call, parsed)
    except Exception:
        log_once(f"openai.complete:{api}", "tracemill: could not record an OpenAI response")
    _end(call)
    return result


class _RawStreamResponse(wrapt.ObjectProxy):
    """``with_raw_response`` of a streamed call: ``parse()`` hands out the traced stream."""

    def __init__(self, raw: Any, stream: Any) -> None:
        super().__init__(raw)
        self._self_stream = stream

    def parse(self, *, to: Any = None) -> Any:
        if to is None:
            return self._self_stream
        return self.__wrapped__.parse(to=to)


def _replayable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn one-shot iterators among the inputs into lists, so recording them does not use them up."""
    for key in ("messages", "input", "tools"):
        value = kwargs.get(key)
        if isinstance(value, Iterator):
            kwargs = {**kwargs, key: list(value)}
    return kwargs


def _sync_wrapper(api: str) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if RUNTIME.disabled:
            return wrapped(*args, **kwargs)
        started = time.monotonic()
        kwargs = _replayable(kwargs)
        call = _begin(api, instance, kwargs)
        if call is None or call.span is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(call.span))
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            _end(call, exc)
            raise
        otel_context.detach(token)
        return _complete(api, call, result, kwargs.get("stream") is True, started)

    return wrapper


def _async_wrapper(api: str) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        if RUNTIME.disabled:
            return await wrapped(*args, **kwargs)
        started = time.monotonic()
        kwargs = _replayable(kwargs)
        call = _begin(api, instance, kwargs)
        if call is None or call.span is None:
            return await wrapped(*args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(call.span))
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:  # CancelledError included: the span still ends
            otel_context.detach(token)
            _end(call, exc)
            raise
        otel_context.detach(token)
        return _complete(api, call, result, kwargs.get("stream") is True, started)

    return wrapper


# --- instrument / uninstrument ------------------------------------------------------------------


def instrument() -> None:
    import importlib

    import openai
    from openai._legacy_response import LegacyAPIResponse
    from openai._types import NotGiven, Omit

    _sdk.update(
        unset=(NotGiven, Omit), azure=(openai.AzureOpenAI, openai.AsyncAzureOpenAI), raw=LegacyAPIResponse,
        stream=openai.Stream, async_stream=openai.AsyncStream, model=openai.BaseModel,
    )
    for module_name, class_name, method, api in _TARGETS:
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if cls is None or method not in cls.__dict__ or (cls, method) in _originals:
            continue
        original = cls.__dict__[method]
        factory = _async_wrapper if class_name.startswith("Async") else _sync_wrapper
        setattr(cls, method, wrapt.FunctionWrapper(original, factory(api)))
        _originals[(cls, method)] = original


def uninstrument() -> None:
    for (cls, method), original in list(_originals.items()):
        setattr(cls, method, original)
        del _originals[(cls, method)]
