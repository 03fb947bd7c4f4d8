"""Carry the caller's context into threads, so a span started in a worker nests under its caller.

asyncio tasks copy ``contextvars`` by themselves; ``threading.Thread`` and
``ThreadPoolExecutor`` do not. Each thread or submitted call runs in a copy of the context
that was current when it was started or submitted — the same rule asyncio follows.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_original_start = threading.Thread.start
_original_submit = ThreadPoolExecutor.submit
_patched = False


def _start(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
    context = contextvars.copy_context()
    run = self.run  # the subclass's own run(), if it overrides one
    self.run = lambda: context.run(run)  # type: ignore[method-assign]
    return _original_start(self, *args, **kwargs)


def _submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    return _original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)


def propagate_context_to_threads() -> None:
    """Patch ``Thread.start`` and ``ThreadPoolExecutor.submit`` (idempotent)."""
    global _patched
    if not _patched:
        threading.Thread.start = _start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign]
        _patched = True


def stop_propagating_context_to_threads() -> None:
    """Undo :func:`propagate_context_to_threads`."""
    global _patched
    if _patched:
        threading.Thread.start = _original_start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = _original_submit  # type: ignore[method-assign]
        _patched = False
