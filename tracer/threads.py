"""Carry the caller's span into threads, so a span started in a worker nests under its caller.

asyncio tasks copy ``contextvars`` by themselves; ``threading.Thread`` and
``ThreadPoolExecutor`` do not. Only the OpenTelemetry context is carried (the span, and the
attributes of an enclosing ``tracemill.run``), not every context variable: libraries that rely
on a new thread starting with fresh context variables keep working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as _futures_thread
from typing import Any

from opentelemetry import context as otel_context

_original_start = threading.Thread.start
_original_submit = ThreadPoolExecutor.submit
_patched = False


def _in_context(ctx: otel_context.Context, fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run


def _start(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
    # A pool's worker threads outlive the call that happened to start them; each submitted
    # call carries its own context instead (see _submit).
    if getattr(self, "_target", None) is not _futures_thread._worker:
        # Replacing the bound run of this one thread object, on purpose.
        self.run = _in_context(otel_context.get_current(), self.run)  # type: ignore[method-assign]
    return _original_start(self, *args, **kwargs)


def _submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    return _original_submit(self, _in_context(otel_context.get_current(), fn), *args, **kwargs)


def propagate_context_to_threads() -> None:
    """Patch ``Thread.start`` and ``ThreadPoolExecutor.submit`` (idempotent)."""
    global _patched
    if not _patched:
        # Monkey-patching stdlib methods is the point here (context propagation by default); the
        # replacements forward every argument, which typeshed's generic signatures cannot express.
        threading.Thread.start = _start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign,assignment]
        _patched = True


def stop_propagating_context_to_threads() -> None:
    """Undo :func:`propagate_context_to_threads`."""
    global _patched
    if _patched:
        # Putting the originals back (mypy flags any assignment to a method).
        threading.Thread.start = _original_start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = _original_submit  # type: ignore[method-assign]
        _patched = False
