"""Dead letters: spans the writer could not store, set aside in ``tracemill_dead_letters`` so the rest lands.

A span whose values ``otel_traces`` cannot hold, or that the store refuses (a constraint, a value
out of range), would fail the insert of every span grouped with it, and the writer would retry
that group for ever while the spool fills. The writer isolates such spans instead
(:mod:`tracemill.collector.ingest.blocks` for what fails in the conversion, :mod:`tracemill.collector.ingest.writer`
for what the store refuses) and stores each here, with the reason and the span itself as a
one-span OTLP request, so nothing acknowledged is lost and ``tracemill status`` can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.schema import DEAD_LETTERS_TABLE, quote_identifier

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tracemill.collector.store.store import Store

__all__ = ["DEAD_LETTER_COLUMNS", "DeadSpan", "dead_letter_summary", "dead_span", "insert_dead_letters", "span_at"]

DEAD_LETTER_COLUMNS = (
    "FailedAt", "Source", "BatchId", "Ordinal", "TraceId", "SpanId", "SpanName", "ServiceName", "Reason", "Request",
)


@dataclass(frozen=True)
class DeadSpan:
    """One span set aside: where it was spooled, why, and the span as a one-span OTLP request."""

    batch_id: int
    ordinal: int
    """Position of the span in its batch, counting across resources and scopes."""
    reason: str
    request: bytes
    trace_id: str = ""
    span_id: str = ""
    name: str = ""
    service: str = ""


def span_at(request: ExportTraceServiceRequest, ordinal: int) -> ExportTraceServiceRequest:
    """The ``ordinal``-th span of ``request`` alone, with its resource and scope."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    position = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            count = len(scope_spans.spans)
            if ordinal < position + count:
                single = ExportTraceServiceRequest()
                out_resource = single.resource_spans.add()
                out_resource.resource.CopyFrom(resource_spans.resource)
                out_resource.schema_url = resource_spans.schema_url
                out_scope = out_resource.scope_spans.add()
                out_scope.scope.CopyFrom(scope_spans.scope)
                out_scope.schema_url = scope_spans.schema_url
                out_scope.spans.add().CopyFrom(scope_spans.spans[ordinal - position])
                return single
            position += count
    raise IndexError(f"the request holds {position} spans, not {ordinal + 1}")


def dead_span(request: ExportTraceServiceRequest, batch_id: int, ordinal: int, reason: str) -> DeadSpan:
    """The dead letter of the ``ordinal``-th span of a spooled request."""
    single = span_at(request, ordinal)
    resource_spans = single.resource_spans[0]
    span = resource_spans.scope_spans[0].spans[0]
    service = next(
        (kv.value.string_value for kv in resource_spans.resource.attributes if kv.key == "service.name"), ""
    )
    return DeadSpan(
        batch_id=batch_id,
        ordinal=ordinal,
        reason=reason[:2000],
        request=single.SerializeToString(),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        name=span.name,
        service=service,
    )


def insert_dead_letters(store: Store, source: str, spans: list[DeadSpan], *, token: str | None = None) -> None:
    """Store ``spans`` (from the spooled group ``source``) under the deduplication ``token``
    (default ``{source}:dead``), so a replay of the same group stores nothing twice."""
    if not spans:
        return
    now = datetime.now(timezone.utc)
    rows = [
        [now, source, s.batch_id, s.ordinal, s.trace_id, s.span_id, s.name, s.service, s.reason, s.request]
        for s in spans
    ]
    # Same group, same dead spans, same token: ClickHouse drops the copy a replay would add.
    settings = {"insert_deduplication_token": token or f"{source}:dead"}
    store.insert(DEAD_LETTERS_TABLE, rows, DEAD_LETTER_COLUMNS, settings=settings)


def dead_letter_summary(store: Store) -> dict[str, Any] | None:
    """How many spans were set aside, and the latest one's reason and time (for ``tracemill status``);
    None for a store whose schema predates the table."""
    exists = store.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": store.database, "t": DEAD_LETTERS_TABLE},
    ).result_rows[0][0]
    if not exists:
        return None
    table = f"{quote_identifier(store.database)}.{quote_identifier(DEAD_LETTERS_TABLE)}"
    count, last_at, last_reason = store.query(
        f"SELECT count(), max(FailedAt), argMax(Reason, FailedAt) FROM {table} FINAL"
    ).result_rows[0]
    return {
        "spans": int(count),
        "last_at": last_at.isoformat() if count and last_at is not None else None,
        "last_reason": last_reason if count else None,
        "table": DEAD_LETTERS_TABLE,
    }
