"""``tracemill.run``: one agent run as the root span of one trace.

A bare loop of decorated calls inside ``with tracemill.run(...)`` is one trace, and every span
in it repeats the run's task id and conversation id, so the miner can group runs by task
without joining back to the root.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, format_span_id, format_trace_id

from tracemill.tracer import semconv
from tracemill.tracer.logs import log_once
from tracemill.tracer.redaction import MASK
from tracemill.tracer.run_io import RUN_IO_KEY, RunIO
from tracemill.tracer.runtime import RUNTIME
from tracemill.tracer.spans import (
    RUN_ATTRIBUTES_KEY,
    active_tracer,
    capture,
    capture_enabled,
    capture_text,
    end_span,
)


class Run:
    """A context manager (sync or async) around one agent run; see :func:`run`."""

    def __init__(
        self,
        name: str = "agent_run",
        *,
        task_id: str | None = None,
        conversation_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        input: Any = None,
        new_trace: bool = False,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.span: Span | None = None
        self._span_context: SpanContext | None = None  # kept after the run ends, for feedback
        self._token: Token[otel_context.Context] | None = None
        self._inherited = {
            k: v for k, v in (
                (semconv.TASK_ID, task_id), (semconv.CONVERSATION_ID, conversation_id), (semconv.USER_ID, user_id),
            ) if v is not None
        }
        self._metadata = dict(metadata or {})
        self._input = input
        self._new_trace = new_trace
        self._attributes = dict(attributes or {})
        self._io = RunIO()
        self._has_input = False
        self._has_output = False

    def __enter__(self) -> Run:
        try:
            tracer = active_tracer()
            if tracer is None:
                return self
            parent = otel_context.Context() if self._new_trace else otel_context.get_current()
            attributes: dict[str, Any] = {
                **self._attributes,
                semconv.OPERATION_NAME: semconv.OP_INVOKE_WORKFLOW, semconv.RUN_NAME: self.name, **self._inherited,
            }
            for key, value in self._metadata.items():
                attributes[semconv.METADATA_PREFIX + key] = _metadata_value(key, value)
            if self._input is not None and capture_enabled():
                attributes[semconv.INPUT] = capture(semconv.INPUT, self._input)
                self._has_input = True
            self.span = tracer.start_span(f"{semconv.OP_INVOKE_WORKFLOW} {self.name}", context=parent,
                                          attributes=attributes)
            self._span_context = self.span.get_span_context()
            self._io = RunIO()
            ctx = otel_context.set_value(RUN_IO_KEY, self._io, trace.set_span_in_context(self.span, parent))
            if self._inherited:
                ctx = otel_context.set_value(RUN_ATTRIBUTES_KEY, self._inherited, ctx)
            self._token = otel_context.attach(ctx)
        except Exception:
            log_once("run.start", "tracemill: could not start a run span; the run is untraced")
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span, self.span = self.span, None
        if span is not None:
            self._record_io(span)
            end_span(span, exc)
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def _record_io(self, span: Span) -> None:
        """Give the root the input and output its agents saw, where the program gave none."""
        if not capture_enabled():
            return
        try:
            span.set_attributes(self._io.root_attributes(has_input=self._has_input, has_output=self._has_output))
        except Exception:
            log_once("run.io", "tracemill: could not record a run's input and output")

    def set_output(self, value: Any) -> None:
        """Record the run's final result (else the run takes its last agent's output, see :func:`run`)."""
        if self.span is not None and capture_enabled():
            self._has_output = True
            self.span.set_attribute(semconv.OUTPUT, capture(semconv.OUTPUT, value))

    @property
    def trace_id(self) -> str | None:
        """The run's trace id as 32 hex digits (what feedback refers to), or None when untraced."""
        return format_trace_id(self._span_context.trace_id) if self._span_context is not None else None

    @property
    def span_id(self) -> str | None:
        return format_span_id(self._span_context.span_id) if self._span_context is not None else None


def _metadata_value(key: str, value: Any) -> Any:
    """Metadata is not content (it is kept with capture off) but it is redacted like content."""
    if RUNTIME.redactor.is_sensitive_key(key):
        return MASK
    if isinstance(value, str):
        return capture_text(value)
    if isinstance(value, (bool, int, float)):
        return value
    return capture(semconv.METADATA_PREFIX + key, value)


def run(
    name: str = "agent_run",
    *,
    task_id: str | None = None,
    conversation_id: str | None = None,
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    input: Any = None,
    new_trace: bool = False,
    attributes: Mapping[str, Any] | None = None,
) -> Run:
    """Open one agent run: an ``invoke_workflow {name}`` root span.

    ``task_id`` names the task the agent was given (runs of the same task are compared by the
    miner); ``conversation_id`` and ``user_id`` follow the GenAI and general conventions;
    ``metadata`` values land under ``tracemill.metadata.*``. Inside another span the run nests
    under it unless ``new_trace=True``. ``attributes`` are set as given on the run's span only (e.g.
    ``{"deployment.environment": "staging"}``), like the decorators' ``attributes=``.

    ``input`` and :meth:`Run.set_output` record the run's input and result on the root. Without
    them the root takes the input of the run's first agent and the output of its last agent to end
    (else the answer of its last LLM call), so trace lists show what each run did.
    """
    return Run(name, task_id=task_id, conversation_id=conversation_id, user_id=user_id, metadata=metadata,
               input=input, new_trace=new_trace, attributes=attributes)
