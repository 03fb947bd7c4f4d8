"""Typed records of what the store holds: what the read layer hands to the CLI, the API, the miner and the trainer.

Frozen dataclasses with times as Unix nanoseconds (ints) and attributes as the stored strings, so
code that computes with them does no parsing; JSON shapes (ISO times, nested trees) are made at
the edge, by :mod:`tracemill.collector.server.api`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "EventRecord",
    "LinkRecord",
    "SpanRecord",
    "StoreSummary",
    "TraceSummary",
]


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace summarized over all its spans (a row of the trace list)."""

    trace_id: str
    name: str
    """The root span's name, else the first span's (when the root never arrived)."""
    service: str
    agents: tuple[str, ...]
    """Every ``gen_ai.agent.name`` in the trace, sorted."""
    task: str
    start_ns: int
    end_ns: int
    spans: int
    errors: int
    input_tokens: int
    output_tokens: int
    root_missing: bool
    """No span of the trace is a root: the root was lost or not sent yet."""

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


@dataclass(frozen=True, slots=True)
class EventRecord:
    time_ns: int
    name: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class LinkRecord:
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """Every stored field of one span."""

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str
    service: str
    resource_attributes: dict[str, str]
    scope_name: str
    scope_version: str
    attributes: dict[str, str]
    start_ns: int
    duration_ns: int
    status_code: str
    status_message: str
    events: tuple[EventRecord, ...] = ()
    links: tuple[LinkRecord, ...] = ()

    @property
    def error(self) -> bool:
        return self.status_code in ("Error", "STATUS_CODE_ERROR")


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """What a store holds."""

    location: str
    database: str
    embedded: bool
    schema_version: int
    spans: int
    traces: int
    error_spans: int
    first_ns: int | None
    last_ns: int | None
    services: tuple[tuple[str, int], ...] = field(default=())
    """(service.name, span count), most spans first, at most 20."""

