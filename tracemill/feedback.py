"""Give feedback from Python: ``tracemill.feedback.correct / score / label / prefer / outcome / decisive / delete``,
and read it back with ``list`` and ``conflicts``.

Each function writes through the one checked write path (:func:`tracemill.collector.feedback.feedback.record_feedback`):
with ``store=`` (a DSN or an open :class:`~tracemill.Store`) in this process, otherwise through the
running server's API (``endpoint=``, default the ``server`` setting or the local server; token from the
``token`` setting, see :mod:`tracemill.config`: the admin token or your reviewer token), like the CLI. With a
reviewer's token the server writes as that reviewer: leave ``author`` out (or give your own name). Without one,
``author`` defaults to the ``author`` setting, else ``$USER``. A refused item raises a
:class:`~tracemill.ConfigError` (or ``TraceNotFoundError``/``SpanNotFoundError``) naming what was wrong, and
nothing is stored. The values follow one convention every component reads (see docs/datasets.md).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracemill import config
from tracemill.client import open_backend
from tracemill.errors import ConfigError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = ["conflicts", "correct", "decisive", "delete", "label", "list", "outcome", "prefer", "record", "score"]

AUTHOR_ENV = config.AUTHOR
"""Who gives feedback when no author is named (declared in :mod:`tracemill.config`)."""


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
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=default_author(author), kind="correction",
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
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=default_author(author), kind="score",
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
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=default_author(author), kind="label",
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
                     author=default_author(author), kind="preference", value=value, comment=comment), store, endpoint)


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
    return _one(dict(trace_id=trace_id, span_id="", name="outcome", author=default_author(author), kind="outcome",
                     value=value, comment=comment), store, endpoint)


def decisive(
    trace_id: str,
    span_id: str,
    *,
    author: str | None = None,
    reason: str = "",
    store: Store | str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Mark ``span_id`` (any span of the trace) as the step where the failed run went wrong. An author
    holds one mark per trace: a new mark replaces the earlier one. The stepwise export and the learned
    decisive-step ranker (``tracemill mine``) learn from these marks."""
    return _one(dict(trace_id=trace_id, span_id=span_id, name="decisive", author=default_author(author),
                     kind="decisive", comment=reason), store, endpoint)


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
    return _one(dict(trace_id=trace_id, span_id=span_id, name=name, author=default_author(author), deleted=True),
                store, endpoint)


def record(
    items: Sequence[Mapping[str, Any]], *, store: Store | str | None = None, endpoint: str | None = None
) -> builtins.list[dict[str, Any]]:
    """Store several raw feedback items at once: all of them, or (on any error) none."""
    with open_backend(store=store, endpoint=endpoint) as backend:
        return backend.record_feedback(builtins.list(items))


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
    with open_backend(store=store, endpoint=endpoint) as backend:
        return backend.feedback(trace_id=trace_id, span_id=span_id, kind=kind, author=author, name=name,
                                limit=limit, offset=offset)


def conflicts(
    *, trace_id: str | None = None, store: Store | str | None = None, endpoint: str | None = None
) -> builtins.list[dict[str, Any]]:
    """Where authors disagree: ``[{"subject": {...}, "feedback": [rows]}]``."""
    with open_backend(store=store, endpoint=endpoint) as backend:
        return backend.conflicts(trace_id)


# -- plumbing ------------------------------------------------------------------------------------


def default_author(author: str | None = None) -> str | None:
    """``author``, else the author setting; None leaves it to the backend: the server takes it from the token,
    and where nobody is authenticated it is ``$USER`` (:func:`tracemill.client.fill_authors`)."""
    return author or config.AUTHOR.raw() or None


def _one(item: dict[str, Any], store: Store | str | None, endpoint: str | None) -> dict[str, Any]:
    return record([item], store=store, endpoint=endpoint)[0]
