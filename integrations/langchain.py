"""LangChain (``langchain-core``) and the LangGraph agents built on it.

``instrument()`` adds one callback handler to every LangChain callback manager, so every run —
chat model, LLM, chain or graph, tool, retriever — becomes a span with no change to the
user's code (see ``_langchain_handler``). The OTel context is set to a run's span for exactly
the duration of its body, so spans created inside (a decorated function, an OpenAI call) nest
under the right LangChain span, in sync, async and streaming runs:

- chains, graph nodes, tools and retrievers run their body in a private copy of the context
  that LangChain (and LangGraph) create through ``_set_config_context``; the hook attaches the
  run's span there, in the copy that is thrown away afterwards, so nothing is ever detached
  out of order;
- chat models and LLMs run their request in ``_generate_with_cache``/``_generate_helper``
  (and the async twins), which the hooks wrap with an attach/detach in the same frame;
- ``stream``/``astream`` of models attach the run's context around each step of the
  generator and detach it before every chunk is handed to the caller.

Callbacks alone cannot do this: LangChain calls the end callbacks of async runs in a copied
context, where a context attached at the start cannot be detached.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import wrapt
from opentelemetry import context as otel_context

from tracemill.tracer.logs import log_once

_handler: Any = None  # the TracemillCallbackHandler while instrumented
_patches: list[tuple[Any, str, Any]] = []


def _context_of(run_manager: Any) -> otel_context.Context | None:
    handler = _handler
    if handler is None or run_manager is None:
        return None
    return handler.context_of(getattr(run_manager, "run_id", None))


# --- hooks ----------------------------------------------------------------------------------


def _manager_init(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> None:
    wrapped(*args, **kwargs)
    handler = _handler
    if handler is not None and not any(h is handler for h in instance.inheritable_handlers):
        instance.add_handler(handler, inherit=True)


def _config_context(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """Runs inside the private context a run's body gets: make the run's span current there."""
    result = wrapped(*args, **kwargs)
    try:
        config = args[0] if args else kwargs.get("config")
        callbacks = config.get("callbacks") if config else None
        handler = _handler
        context = handler.context_of(getattr(callbacks, "parent_run_id", None)) if handler is not None else None
        if context is not None:
            otel_context.attach(context)  # this context copy is discarded after the run: no detach
    except Exception:
        log_once("langchain.config_context", "tracemill: could not set the context of a LangChain run")
    return result


def _run_manager(args: Any, kwargs: Any) -> Any:
    return kwargs.get("run_manager", args[2] if len(args) > 2 else None)


def _single_run_manager(args: Any, kwargs: Any) -> Any:
    managers = kwargs.get("run_managers", args[2] if len(args) > 2 else None)
    return managers[0] if managers and len(managers) == 1 else None


def _in_run_context(pick: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        context = _context_of(pick(args, kwargs))
        if context is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(context)
        try:
            return wrapped(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return wrapper


def _in_run_context_async(pick: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        context = _context_of(pick(args, kwargs))
        if context is None:
            return await wrapped(*args, **kwargs)
        token = otel_context.attach(context)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return wrapper


def _stepwise(inner: Iterator[Any], enter: Callable[[], Any], leave: Callable[[Any], None]) -> Iterator[Any]:
    """Run each step of ``inner`` between ``enter()`` and ``leave(token)``; leave before handing an item out."""
    try:
        while True:
            token = enter()
            try:
                item = next(inner)
            except StopIteration:
                return
            finally:
                leave(token)
            yield item
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            close()


async def _async_stepwise(
    inner: AsyncIterator[Any], enter: Callable[[], Any], leave: Callable[[Any], None]
) -> AsyncIterator[Any]:
    try:
        while True:
            token = enter()
            try:
                item = await inner.__anext__()
            except StopAsyncIteration:
                return
            finally:
                leave(token)
            yield item
    finally:
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            await aclose()


def _event_steps_in_run_context(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """The v3 event stream pumps a model's v2 events one step at a time, outside the generate hooks."""
    inner = wrapped(*args, **kwargs)
    context = _context_of(kwargs.get("run_manager"))
    return inner if context is None else _stepwise(inner, lambda: otel_context.attach(context), otel_context.detach)


def _async_event_steps_in_run_context(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    inner = wrapped(*args, **kwargs)
    context = _context_of(kwargs.get("run_manager"))
    if context is None:
        return inner
    return _async_stepwise(inner, lambda: otel_context.attach(context), otel_context.detach)


def _stream_scope_hooks() -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """Enter/leave of one stream's scope: set as current and resumed around each step."""
    from tracemill.integrations._langchain_handler import STREAM_SCOPE, StreamScope

    scope = StreamScope()

    def enter() -> Any:
        token = STREAM_SCOPE.set(scope)
        scope.resume()
        return token

    def leave(token: Any) -> None:
        scope.leave()
        STREAM_SCOPE.reset(token)

    return enter, leave


def _scoped_stream(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    return _stepwise(wrapped(*args, **kwargs), *_stream_scope_hooks())


def _scoped_astream(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    return _async_stepwise(wrapped(*args, **kwargs), *_stream_scope_hooks())


# --- instrument / uninstrument ------------------------------------------------------------------


def _patch(owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if original is None:
        log_once(f"langchain.patch:{name}", "tracemill: LangChain has no %s.%s; spans may not nest there",
                 getattr(owner, "__name__", owner), name, exc_info=False)
        return
    setattr(owner, name, wrapt.FunctionWrapper(original, wrapper))
    _patches.append((owner, name, original))


def instrument() -> None:
    global _handler
    from langchain_core.callbacks.base import BaseCallbackManager
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.language_models.llms import BaseLLM
    from langchain_core.runnables import config as runnable_config

    from tracemill.integrations._langchain_handler import TracemillCallbackHandler

    _handler = TracemillCallbackHandler()
    _patch(BaseCallbackManager, "__init__", _manager_init)
    _patch(runnable_config, "_set_config_context", _config_context)
    with contextlib.suppress(ImportError):  # LangGraph runs its nodes through its own copy of the same helper
        _patch(importlib.import_module("langgraph._internal._runnable"), "_set_config_context", _config_context)
    _patch(BaseChatModel, "_generate_with_cache", _in_run_context(_run_manager))
    _patch(BaseChatModel, "_agenerate_with_cache", _in_run_context_async(_run_manager))
    _patch(BaseLLM, "_generate_helper", _in_run_context(_single_run_manager))
    _patch(BaseLLM, "_agenerate_helper", _in_run_context_async(_single_run_manager))
    for model in (BaseChatModel, BaseLLM):
        _patch(model, "stream", _scoped_stream)
        _patch(model, "astream", _scoped_astream)
    if hasattr(BaseChatModel, "_iter_v2_events"):  # langchain-core with stream_events(version="v3")
        _patch(BaseChatModel, "_iter_v2_events", _event_steps_in_run_context)
        _patch(BaseChatModel, "_aiter_v2_events", _async_event_steps_in_run_context)


def uninstrument() -> None:
    global _handler
    while _patches:
        owner, name, original = _patches.pop()
        setattr(owner, name, original)
    if _handler is not None:
        _handler.active = False  # managers created meanwhile may still hold it
    _handler = None
