"""Which LLM span asked for which tool call.

When an LLM span records output tool calls, their ids are remembered with that span's
context; the ``execute_tool`` span that runs the call gets the id and a span link back to
the decision, and the parameter schema the model was given for that tool when the LLM call
had tool definitions. A tool span started without an id (a decorated function called by the agent's
own loop) takes the oldest pending call of the same tool name in the same trace. Memory is
bounded: only the most recent traces are remembered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping

from opentelemetry.trace import SpanContext

_MAX_TRACES = 1024
_MAX_PENDING_PER_TRACE = 256


class ToolCallRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # trace id -> deque of (call id, tool name, LLM span context, parameter schema), oldest first
        self._pending: OrderedDict[int, deque[tuple[str | None, str, SpanContext, str | None]]] = OrderedDict()
        self._by_id: OrderedDict[str, tuple[SpanContext, str | None]] = OrderedDict()

    def register(
        self, llm_span: SpanContext, calls: list[tuple[str | None, str]], parameters: Mapping[str, str] | None = None,
    ) -> None:
        """Remember the tool calls an LLM span's output asked for, with each tool's parameter schema
        (JSON text, by tool name) when the call had tool definitions."""
        if not calls:
            return
        parameters = parameters or {}
        with self._lock:
            pending = self._pending.get(llm_span.trace_id)
            if pending is None:
                pending = self._pending[llm_span.trace_id] = deque(maxlen=_MAX_PENDING_PER_TRACE)
                if len(self._pending) > _MAX_TRACES:
                    self._pending.popitem(last=False)
            for call_id, name in calls:
                schema = parameters.get(name)
                pending.append((call_id, name, llm_span, schema))
                if call_id:
                    self._by_id[call_id] = (llm_span, schema)
                    if len(self._by_id) > _MAX_TRACES * 8:
                        self._by_id.popitem(last=False)

    def claim(
        self, trace_id: int, tool_name: str, call_id: str | None,
    ) -> tuple[str | None, SpanContext | None, str | None]:
        """Match a starting tool span to the call that asked for it: (call id, LLM span context, the
        tool's parameter schema as the LLM call defined it)."""
        with self._lock:
            pending = self._pending.get(trace_id)
            if call_id:
                llm_span, schema = self._by_id.pop(call_id, (None, None))
                if pending:
                    for i, entry in enumerate(pending):
                        if entry[0] == call_id:
                            del pending[i]
                            break
                return call_id, llm_span, schema
            if pending:
                for i, (pending_id, name, llm_span, schema) in enumerate(pending):
                    if name == tool_name:
                        del pending[i]
                        if pending_id:
                            self._by_id.pop(pending_id, None)
                        return pending_id, llm_span, schema
            return None, None, None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._by_id.clear()


TOOL_CALLS = ToolCallRegistry()
