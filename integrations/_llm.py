"""One LLM span per provider call, and the small conversions every integration shares.

A framework (LangChain, LlamaIndex) opens its LLM span before it can know whether the request
underneath goes through a provider integration (OpenAI). It offers that span in the OTel
context as a *slot*. The first provider call made inside takes the slot and is the ``chat``
span of record: the exact request payload, the response id, the usage. The framework's span
then ends as a plain wrapper named after the framework's component, with
``tracemill.llm.delegated`` set and no GenAI operation, content or usage, so the call is counted
once. A second provider call under the same framework span finds the slot taken and gets its
own span: no real call goes untraced. When nothing takes the slot (a model without a provider
integration), the framework span becomes the ``chat`` span itself, with the framework's view of
inputs, outputs and usage.

The slot is a context value, so only calls made *inside* that framework run can take it; there
is no global switch that could hide an unrelated call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from tracemill.tracer import semconv
from tracemill.tracer.logs import log_once
from tracemill.tracer.manual import LLMCall
from tracemill.tracer.messages import Message
from tracemill.tracer.spans import active_tracer, end_span, start_span
from tracemill.tracer.versions.config_version import CONFIG_VERSION

_SLOT_KEY = otel_context.create_key("tracemill.llm_slot")
_claim_lock = threading.Lock()


class LLMSlot:
    """A framework LLM span that a provider call made inside it may take over."""

    __slots__ = ("claimed",)

    def __init__(self) -> None:
        self.claimed = False


def claim_llm_slot(context: otel_context.Context | None = None) -> bool:
    """Take the enclosing framework LLM span's slot; True when this call is now the call of record."""
    slot = otel_context.get_value(_SLOT_KEY, context)
    if not isinstance(slot, LLMSlot):
        return False
    with _claim_lock:
        if slot.claimed:
            return False
        slot.claimed = True
        return True


class FrameworkLLMSpan:
    """A framework's LLM call: the ``chat`` span unless a provider call inside takes it over.

    ``start()`` returns the context to run the model in (it carries the span and the slot).
    Inputs given with :meth:`set_input` are recorded only when this span is the call of record.
    """

    def __init__(
        self,
        *,
        component: str,
        framework: str,
        provider: str,
        model: str,
        operation: str = semconv.OP_CHAT,
        parent: otel_context.Context | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        self.component, self.framework = component, framework
        self.provider, self.model, self.operation = provider, model, operation
        self._parent = parent
        self._request = {k: v for k, v in (request or {}).items() if v is not None}
        self._input: dict[str, Any] = {}
        self.slot = LLMSlot()
        self.span: Span | None = None
        self.context: otel_context.Context | None = None
        self._started = time.monotonic()
        self._first_chunk_s: float | None = None
        self._ended = False

    def _call(self, **inputs: Any) -> LLMCall:
        return LLMCall(provider=self.provider, model=self.model, operation=self.operation,
                       attributes={semconv.FRAMEWORK: self.framework}, **self._request, **inputs)

    def start(self) -> otel_context.Context | None:
        try:
            tracer = active_tracer()
            if tracer is None:
                return None
            attributes = self._call().start_attributes()
            # The operation is set at the end, once it is known that this span is the call of record.
            attributes.pop(semconv.OPERATION_NAME, None)
            attributes.pop(CONFIG_VERSION, None)  # hashed at the end, with the inputs
            name = f"{self.operation} {self.model}" if self.model else self.operation
            self.span = start_span(tracer, name, kind=SpanKind.CLIENT, attributes=attributes, parent=self._parent)
            context = trace.set_span_in_context(self.span, self._parent)
            self.context = otel_context.set_value(_SLOT_KEY, self.slot, context)
            # A framework LLM call inside another one (a wrapper model) is the nearer call: it takes over.
            claim_llm_slot(self._parent)
        except Exception:
            log_once("framework_llm.start", "tracemill: could not start a %s LLM span", self.framework)
            self.span = self.context = None
        return self.context

    def set_input(
        self,
        messages: Any = None,
        *,
        system_instructions: str | Sequence[Any] | None = None,
        tool_definitions: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self._input = {"input_messages": messages, "system_instructions": system_instructions,
                       "tool_definitions": tool_definitions}

    def first_chunk(self) -> None:
        if self._first_chunk_s is None:
            self._first_chunk_s = time.monotonic() - self._started

    def end(
        self,
        messages: Sequence[Message] | None = None,
        *,
        exc: BaseException | None = None,
        closed_early: bool = False,
        **output: Any,
    ) -> None:
        """End once. ``output`` takes :meth:`LLMCall.record_output`'s keywords (usage, response ids)."""
        if self._ended:
            return
        self._ended = True
        span = self.span
        if span is None:
            return
        try:
            if self.slot.claimed:
                span.update_name(self.component)
                span.set_attribute(semconv.LLM_DELEGATED, True)
            else:
                call = self._call(**self._input)
                span.set_attributes(call.start_attributes())
                call.span = span
                if messages or any(v is not None for v in output.values()):
                    call.record_output(list(messages or ()), **output)
                if self._first_chunk_s is not None:
                    span.set_attribute(semconv.TIME_TO_FIRST_CHUNK, self._first_chunk_s)
            if closed_early:
                span.set_attribute(semconv.CLOSED_EARLY, True)
        except Exception:
            log_once("framework_llm.end", "tracemill: could not record a %s LLM call", self.framework)
        end_span(span, exc)


def plain(value: Any) -> Any:
    """A pydantic model (an SDK's message or tool object) as a dict; anything else unchanged."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(exclude_none=True)
        except Exception:
            return value
    return value


def tool_definitions(tools: Iterable[Any] | None) -> list[dict[str, Any]] | None:
    """Tool definitions in the flat GenAI shape ``{type, name, description, parameters}``.

    Accepts Chat Completions tools (``{"type": "function", "function": {...}}``), Responses API
    tools (already flat) and pydantic tool objects.
    """
    if not tools:
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        tool = plain(tool)
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        if isinstance(function, Mapping):
            definition = {"type": tool.get("type", "function"), "name": function.get("name"),
                          "description": function.get("description"), "parameters": function.get("parameters")}
        else:
            definition = dict(tool)
        out.append({k: v for k, v in definition.items() if v is not None})
    return out or None
