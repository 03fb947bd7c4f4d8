"""tracemill: turn what your LLM agents did into better agents.

The public surface, declared in one place. Importing tracemill loads only the tracing SDK;
the store, miner and trainer load when first used and name their extra if it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracemill.errors import (
    ConfigError,
    MissingDependencyError,
    NotFoundError,
    PayloadError,
    PayloadTooLargeError,
    SchemaError,
    ServerError,
    SpanNotFoundError,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
    TracemillError,
    TraceNotFoundError,
    UnsupportedMediaTypeError,
)
from tracemill.integrations import instrument, uninstrument
from tracemill.tracer import (
    LLMCall,
    Run,
    ToolCall,
    agent,
    force_flush,
    llm_call,
    prompt,
    rollout,
    run,
    set_attributes,
    set_decision,
    shutdown,
    step,
    tool,
    tool_call,
)
from tracemill.tracer.runtime import init, set_store_exporter_factory

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store
    from tracemill.miner import MineResult, mine

__version__ = "0.1.0"


def _store_exporter(dsn: str) -> Any:
    """``init(store=DSN)``: the collector's exporter, imported only when a store is asked for."""
    from tracemill.deps import require

    require("clickhouse_connect", extra="server", feature="Writing spans to a store (store=...)")
    from tracemill.collector.ingest.exporter import StoreSpanExporter

    return StoreSpanExporter(dsn)


set_store_exporter_factory(_store_exporter)


def __getattr__(name: str) -> Any:
    if name == "Store":
        from tracemill.deps import require

        require("clickhouse_connect", extra="server", feature="The trace store")
        from tracemill.collector.store.store import Store

        return Store
    if name == "feedback":  # tracemill.feedback.correct(...) without importing the module first
        import importlib

        return importlib.import_module("tracemill.feedback")
    if name in ("mine", "MineResult"):
        import tracemill.miner as miner

        return getattr(miner, name)
    if name == "train":
        from tracemill.deps import require

        require("trl", extra="train", feature="Training (tracemill.train)")
        from tracemill.trainer.train import train

        return train
    raise AttributeError(f"module 'tracemill' has no attribute {name!r}")


__all__ = [
    "ConfigError", "LLMCall", "MineResult", "MissingDependencyError", "NotFoundError", "PayloadError",
    "PayloadTooLargeError", "Run", "SchemaError", "ServerError", "SpanNotFoundError",
    "SpoolError", "SpoolFullError", "SpoolLockedError", "Store", "StoreError",
    "StoreLockedError", "StoreUnavailableError", "ToolCall", "TraceNotFoundError", "TracemillError",
    "UnsupportedMediaTypeError", "__version__", "agent", "force_flush", "init", "instrument", "llm_call", "mine",
    "prompt", "rollout", "run", "set_attributes", "set_decision", "shutdown", "step", "tool", "tool_call", "train",
    "uninstrument",
]
