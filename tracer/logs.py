"""Logging for the tracing path: every internal failure is logged, once per place.

A decorated function may run millions of times; a broken serializer must not write a
million identical warnings (the OTel SDK uses the same kind of duplicate filter).
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("tracemill")

_MAX_KEYS = 1024
_seen: set[str] = set()
_lock = threading.Lock()


def log_once(key: str, message: str, *args: object, exc_info: bool = True) -> None:
    """Log ``message`` at WARNING the first time ``key`` is seen; stay silent afterwards."""
    with _lock:
        if key in _seen or len(_seen) >= _MAX_KEYS:
            return
        _seen.add(key)
    logger.warning(message, *args, exc_info=exc_info)


def reset_log_once() -> None:
    """Forget which failures were logged (for tests)."""
    with _lock:
        _seen.clear()
