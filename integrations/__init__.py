"""Automatic tracing of LLM frameworks: ``tracemill.instrument()`` and ``tracemill.uninstrument()``.

Each integration is one module that imports its framework only inside its own ``instrument``,
so importing this package costs nothing and works without any framework installed::

    tracemill.instrument()              # every supported framework that is installed
    tracemill.instrument("openai")      # just this one; an error if it is not installed
    tracemill.uninstrument()            # undo everything instrument() did

Instrumenting twice is a no-op. The registry below is the one list of supported names.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass

from tracemill.errors import ConfigError

logger = logging.getLogger("tracemill")


@dataclass(frozen=True)
class Integration:
    name: str
    module: str  # the tracemill module with instrument()/uninstrument()
    requires: str  # the framework module it needs
    title: str  # how the error message names the integration


REGISTRY: dict[str, Integration] = {
    i.name: i
    for i in (
        Integration("openai", "tracemill.integrations.openai", "openai", "The OpenAI integration"),
        Integration("langchain", "tracemill.integrations.langchain", "langchain_core", "The LangChain integration"),
        Integration("llama_index", "tracemill.integrations.llama_index", "llama_index.core",
                    "The LlamaIndex integration"),
    )
}
_ALIASES = {"langchain_core": "langchain", "langgraph": "langchain", "llamaindex": "llama_index",
            "llama-index": "llama_index"}

_active: set[str] = set()
_lock = threading.Lock()


def _resolve(name: str) -> Integration:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    integration = REGISTRY.get(key)
    if integration is None:
        raise ConfigError(f"'{name}' is not a tracemill integration; choose from {', '.join(sorted(REGISTRY))}")
    return integration


def _available(integration: Integration) -> bool:
    try:
        importlib.import_module(integration.requires)
    except ImportError:
        return False
    return True


def instrument(*names: str) -> list[str]:
    """Trace the named frameworks (all installed ones when no name is given); returns the active names.

    A framework named explicitly but not installed raises :class:`~tracemill.MissingDependencyError`
    with the install command; with no names, missing frameworks are skipped (logged at debug level).
    An unknown name raises :class:`~tracemill.ConfigError`.
    """
    from tracemill.deps import require

    explicit = bool(names)
    targets = [_resolve(n) for n in names] if explicit else list(REGISTRY.values())
    with _lock:
        for integration in targets:
            if integration.name in _active:
                continue
            if explicit:
                require(integration.requires, extra="integrations", feature=integration.title)
            elif not _available(integration):
                logger.debug("tracemill: %s is not installed; skipping its integration", integration.requires)
                continue
            try:
                module = importlib.import_module(integration.module)
                module.instrument()
            except Exception:
                # A framework version this integration cannot patch must not stop the program.
                logger.warning("tracemill: could not instrument %s; it runs untraced", integration.name,
                               exc_info=True)
                _undo(integration)
                continue
            _active.add(integration.name)
        return sorted(_active)


def _undo(integration: Integration) -> None:
    try:
        importlib.import_module(integration.module).uninstrument()
    except Exception:
        logger.debug("tracemill: could not undo a partial %s instrumentation", integration.name, exc_info=True)


def uninstrument(*names: str) -> None:
    """Undo :func:`instrument` for the named frameworks, or for all of them."""
    targets = [_resolve(n) for n in names] if names else list(REGISTRY.values())
    with _lock:
        for integration in targets:
            if integration.name not in _active:
                continue
            _undo(integration)
            _active.discard(integration.name)


def instrumented() -> list[str]:
    """The names of the integrations that are active now."""
    return sorted(_active)


__all__ = ["REGISTRY", "Integration", "instrument", "instrumented", "uninstrument"]
