"""Decisive-step marks: the one span of a failed run where it went wrong, as a reviewer (or a judge) sees it.

A mark is feedback of kind ``decisive`` named ``decisive`` on the span, so it is keyed like any other
feedback, but an author holds one mark per trace: marking another span of the same trace withdraws the
author's earlier mark (a tombstone in the same write), and two marks of one author on one trace in a
single write are refused. Authors who mark different spans of a trace disagree (see
:mod:`tracemill.collector.feedback.conflicts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tracemill.errors import ConfigError

__all__ = ["DECISIVE", "check_decisive", "check_one_per_author", "superseded"]

DECISIVE = "decisive"
"""The kind and the name of a decisive-step mark."""


def check_decisive(item: dict[str, Any]) -> None:
    """A mark names a span (the step) and is named ``decisive``; its reason is the comment."""
    if not item["span_id"]:
        raise ConfigError("a decisive mark names the span where the run went wrong (span_id)")
    if item["name"] != DECISIVE:
        raise ConfigError(f"a decisive mark is named {DECISIVE!r} (got {item['name']!r})")
    if item["value"] is not None:
        raise ConfigError("a decisive mark carries no value; give the reason as its comment")


def check_one_per_author(items: Sequence[Mapping[str, Any]]) -> None:
    """Two live marks of one author on one trace in one write: which step is meant would be ambiguous."""
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if item["deleted"] or item["kind"] != DECISIVE:
            continue
        key = (item["trace_id"], item["author"])
        if key in seen:
            raise ConfigError(
                f"item {index}: item {seen[key]} already marks the decisive step of trace {item['trace_id']} "
                f"for {item['author']!r}; an author marks one step per trace"
            )
        seen[key] = index


def superseded(
    items: Iterable[Mapping[str, Any]], existing: Mapping[tuple[str, str, str, str], Mapping[str, Any]]
) -> list[tuple[str, str, str, str]]:
    """The keys of earlier marks (trace, span, name, author) that the live marks in ``items`` replace."""
    marked = {(item["trace_id"], item["author"]): item["span_id"] for item in items
              if not item["deleted"] and item["kind"] == DECISIVE}
    return [key for key, row in existing.items()
            if row["kind"] == DECISIVE and key[0:4:3] in marked and marked[key[0:4:3]] != key[1]]
