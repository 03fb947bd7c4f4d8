"""Give feedback from Python: ``tracemill.feedback.correct / score / label / prefer / outcome / delete``,
and read it back with ``list`` and ``conflicts``.

Each function writes through the one checked write path (:func:`tracemill.collector.feedback.record_feedback`):
with ``store=`` (a DSN or an open :class:`~tracemill.Store`) in this process, otherwise through the
running server's API (``endpoint=``, default ``TRACEMILL_SERVER`` or the local server; token from
``TRACEMILL_TOKEN``: the admin token or your reviewer token), like the CLI. With a reviewer's token the
server writes as that reviewer: leave ``author`` out (or give your own name). Without one, ``author``
defaults to ``TRACEMILL_AUTHOR``, else ``$USER``. A refused item raises a :class:`~tracemill.ConfigError` (or
``TraceNotFoundError``/``SpanNotFoundError``) naming what was wrong, and nothing is stored. The values
follow one convention every component reads (see docs/datasets.md).
"""

from __future__ import annotations

import builtins
import os
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracemill.errors import ConfigError
from tracemill.tracer.config import EnvVar

if TYPE_CHECKING:
    from tracemill.collector.store import Store

__all__ = ["conflicts", "correct", "delete", "label", "list", "outcome", "prefer", "record", "score"]

AUTHOR_ENV = EnvVar("TRACEMILL_AUTHOR", "author",
                    "who gives feedback from the CLI and tracemill.feedback; default $USER")


def correct(
    trace_id: str,
    span_id: str,
    *,
    output: str | None = None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    author: str | None = None,
    comment: str = "",
    name: str = "correction",
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Say what the LLM span ``span_id`` should have answered: ``output`` text and/or ``tool_calls``
    (``{"id", "name", "arguments"}``; arguments a dict or JSON text), checked against the span's tools."""
    value = {"output": output, "tool_calls": [dict(call) for call in tool_calls]}
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=_author(author), kind="correction",
                     value=value, comment=comment), store, endpoint)


def score(
    trace_id: str,
    value: float,
    *,
    span_id: str = "",
    name: str = "quality",
    author: str | None = None,
    comment: str = "",
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """A score in [0, 1] of a span (or, with no ``span_id``, the whole trace)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"a score is a number from 0 to 1 (got {value!r})")
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=_author(author), kind="score",
                     score=float(value), comment=comment), store, endpoint)


def label(
    trace_id: str,
    value: str,
    *,
    span_id: str = "",
    name: str = "thumbs",
    author: str | None = None,
    comment: str = "",
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """A label of a span or trace: ``good``/``bad`` (or thumbs_up/thumbs_down, positive/negative,
    correct/incorrect), or any other text for labels of your own."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("a label is a non-empty string such as good or bad")
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=_author(author), kind="label",
                     label=value.strip(), comment=comment), store, endpoint)


def prefer(
    trace_id: str,
    better_span_id: str,
    worse_span_id: str,
    *,
    worse_trace_id: str | None = None,
    author: str | None = None,
    comment: str = "",
    name: str | None = None,
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """One LLM span's answer is better than another's to the same input (the worse one may be in
    ``worse_trace_id``). Stored on the better span, named after the worse one, so preferring A to B
    and A to C are two judgements."""
    value: dict[str, Any] = {"better": better_span_id, "worse": worse_span_id}
    if worse_trace_id:
        value["worse_trace"] = worse_trace_id
    return _one(dict(trace_id=trace_id, span_id=better_span_id, name=name or f"preference:{worse_span_id}",
                     author=_author(author), kind="preference", value=value, comment=comment), store, endpoint)


def outcome(
    trace_id: str,
    *,
    success: bool | None = None,
    reward: float | None = None,
    author: str | None = None,
    comment: str = "",
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """How the whole run ended: ``success=True/False`` or a ``reward`` number (one of the two)."""
    if (success is None) == (reward is None):
        raise ConfigError("an outcome takes success=True/False or reward=NUMBER (exactly one)")
    value = {"success": success} if success is not None else {"reward": reward}
    return _one(dict(trace_id=trace_id, span_id="", name="outcome", author=_author(author), kind="outcome",
                     value=value, comment=comment), store, endpoint)


def delete(
    trace_id: str,
    *,
    name: str,
    span_id: str = "",
    author: str | None = None,
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Withdraw one piece of feedback (a tombstone: the history stays in the store)."""
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=_author(author), deleted=True),
                store, endpoint)


def record(
    items: Sequence[Mapping[str, Any]], *, store: Store | str | None = None, endpoint: str | None = None
) -> builtins.list[dict[str, Any]]:
    """Store several raw feedback items at once: all of them, or (on any error) none."""
    if store is not None:
        from tracemill.collector.feedback import record_feedback
        from tracemill.collector.store import using_store

        with using_store(store) as opened:
            return record_feedback(opened, fill_authors(items, identity=None))
    server = _server(endpoint)
    return server.post("/api/feedback", fill_authors(items, identity=server.identity))["feedback"]


def list(
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    kind: str | None = None,
    author: str | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = 0,
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> builtins.list[dict[str, Any]]:
    """Current feedback, newest first."""
    if store is not None:
        from tracemill.collector.feedback import list_feedback
        from tracemill.collector.store import using_store

        with using_store(store) as opened:
            return list_feedback(opened, trace_id=trace_id, span_id=span_id, kind=kind, author=author, name=name,
                                 limit=limit, offset=offset)
    filters = {"trace_id": trace_id, "span_id": span_id, "kind": kind, "author": author, "name": name,
               "limit": limit, "offset": offset}
    return _server(endpoint).get("/api/feedback", filters)["feedback"]


def conflicts(
    *, trace_id: str | None = None, store: Store | str | None = None, endpoint: str | None = None
) -> builtins.list[dict[str, Any]]:
    """Where authors disagree: ``[{"subject": {...}, "feedback": [rows]}]``."""
    if store is not None:
        from tracemill.collector.feedback_conflicts import list_conflicts
        from tracemill.collector.store import using_store

        with using_store(store) as opened:
            return list_conflicts(opened, trace_id=trace_id)
    return _server(endpoint).get("/api/feedback/conflicts", {"trace_id": trace_id})["conflicts"]


# -- plumbing ------------------------------------------------------------------------------------


def _author(author: str | None) -> str | None:
    return author or os.environ.get(AUTHOR_ENV.name) or None


def default_author() -> str:
    """Who writes when nobody is authenticated and no author is named: ``$USER``."""
    return os.environ.get("USER") or "anonymous"


def fill_authors(
    items: Sequence[Mapping[str, Any]], *, identity: Callable[[], Mapping[str, Any]] | None
) -> builtins.list[dict[str, Any]]:
    """The items with ``author`` left out where none was named, so the server sets it from the token; when
    nobody is authenticated (``identity`` is None for a store opened here, or the server says ``open``), the
    default author instead."""
    out = [{k: v for k, v in item.items() if not (k == "author" and v is None)} for item in items]
    if any("author" not in item for item in out) and (identity is None or identity().get("role") == "open"):
        for item in out:
            item.setdefault("author", default_author())
    return out


def _one(item: dict[str, Any], store: Store | str | None, endpoint: str | None) -> dict[str, Any]:
    return record([item], store=store, endpoint=endpoint)[0]


class _Server:
    """The running server's API; an address where nothing answers is a clear error, not a traceback."""

    def __init__(self, url: str, token: str | None) -> None:
        from tracemill.client import ServerBackend

        self.backend = ServerBackend(url, token=token)

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        return self._call(lambda: self.backend.get(path, params))

    def post(self, path: str, body: Any) -> Any:
        return self._call(lambda: self.backend.post(path, body))

    def identity(self) -> Mapping[str, Any]:
        """Who the server takes this client's token for (a server that cannot say authenticates nobody)."""
        return server_identity(self.backend)

    def _call(self, send: Any) -> Any:
        try:
            return send()
        except (urllib.error.URLError, OSError) as exc:
            raise ConfigError(
                f"no tracemill server answers at {self.backend.url} ({exc}); pass store= to use a store "
                "directly, or start `tracemill serve`"
            ) from None


def server_identity(backend: Any) -> Mapping[str, Any]:
    """``GET /api/identity`` of a server backend; ``open`` for a server that predates it."""
    from tracemill.errors import ServerError

    try:
        return backend.get("/api/identity")
    except ServerError:
        return {"role": "open", "author": None}


def _server(endpoint: str | None) -> _Server:
    from tracemill.client import default_server_url

    return _Server((endpoint or default_server_url()).rstrip("/"), os.environ.get("TRACEMILL_TOKEN") or None)
