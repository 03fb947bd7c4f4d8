"""Which LLM span asked for which tool call.

When an LLM span records output tool calls, their ids are remembered with that span's
context; the ``execute_tool`` span that runs the call gets the id and a span link back to
the decision. A tool span started without an id (a decorated function called by the agent's
own loop) takes the oldest pending call of the same tool name in the same trace. Memory is
bounded: only the most recent traces are remembered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from opentelemetry.trace import SpanContext

_MAX_TRACES = 1024
_MAX_PENDING_PER_TRACE = 256


class ToolCallRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # trace id -> deque of (call id, tool name, LLM span context), oldest first
        self._pending: OrderedDict[int, deque[tuple[str | None, str, SpanContext]]] = OrderedDict()
        self._by_id: OrderedDict[str, SpanContext] = OrderedDict()

    def register(self, llm_span: SpanContext, calls: list[tuple[str | None, str]]) -> None:
        """Remember the tool calls an LLM span's output asked for."""
        if not calls:
            return
        with self._lock:
            pending = self._pending.get(llm_span.trace_id)
            if pending is None:
                pending = self._pending[llm_span.trace_id] = deque(maxlen=_MAX_PENDING_PER_TRACE)
                if len(self._pending) > _MAX_TRACES:
                    self._pending.popitem(last=False)
            for call_id, name in calls:
                pending.append((call_id, name, llm_span))
                if call_id:
                    self._by_id[call_id] = llm_span
                    if len(self._by_id) > _MAX_TRACES * 8:
                        self._by_id.popitem(last=False)

    def claim(self, trace_id: int, tool_name: str, call_id: str | None) -> tuple[str | None, SpanContext | None]:
        """Match a starting tool span to the call that asked for it: (call id, LLM span context)."""
        with self._lock:
            pending = self._pending.get(trace_id)
            if call_id:
                llm_span = self._by_id.pop(call_id, None)
                if pending:
                    for i, entry in enumerate(pending):
                        if entry[0] == call_id:
                            del pending[i]
                            break
                return call_id, llm_span
            if pending:
                for i, (pending_id, name, llm_span) in enumerate(pending):
                    if name == tool_name:
                        del pending[i]
                        if pending_id:
                            self._by_id.pop(pending_id, None)
                        return pending_id, llm_span
            return None, None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._by_id.clear()


TOOL_CALLS = ToolCallRegistry()
