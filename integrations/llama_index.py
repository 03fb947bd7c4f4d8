"""LlamaIndex (``llama-index-core``): a span handler and an event handler on its dispatcher.

``instrument()`` registers both on LlamaIndex's root instrumentation dispatcher, which every
LlamaIndex component reports to: LLM calls, tool calls, agent runs and their steps, and
retrievals become spans with the GenAI attributes, in sync, async and streaming use (see
``_llama_index_handlers``). ``uninstrument()`` removes them.
"""

from __future__ import annotations

from typing import Any

_handlers: tuple[Any, Any] | None = None


def instrument() -> None:
    global _handlers
    from llama_index.core.instrumentation import get_dispatcher

    from tracemill.integrations._llama_index_handlers import TracemillEventHandler, TracemillSpanHandler

    if _handlers is not None:
        return
    spans = TracemillSpanHandler()
    events = TracemillEventHandler().bind(spans)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(spans)
    dispatcher.add_event_handler(events)
    _handlers = (spans, events)


def uninstrument() -> None:
    global _handlers
    from llama_index.core.instrumentation import get_dispatcher

    if _handlers is None:
        return
    spans, events = _handlers
    dispatcher = get_dispatcher()
    spans.deactivate()
    # by identity: pydantic models compare equal by their fields
    dispatcher.span_handlers[:] = [h for h in dispatcher.span_handlers if h is not spans]
    dispatcher.event_handlers[:] = [h for h in dispatcher.event_handlers if h is not events]
    _handlers = None
