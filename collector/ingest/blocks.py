"""Spooled payloads → one ClickHouse Native block of ``otel_traces`` rows, and its insert.

This is the writer's insert split in two halves so the expensive half can run in another
process: :func:`encode_payloads` does the CPU work in pure Python (protobuf → rows with
:func:`~tracemill.collector.ingest.rows.request_to_rows`, the one conversion, then rows → Native bytes
with clickhouse-connect's own column serializers, exactly what ``client.insert`` does), and
:func:`insert_block` hands the bytes to the store with the batch's deduplication token. A
Native block is plain bytes, so it crosses a process boundary for the cost of a copy, where
the rows themselves (lists of dicts) would cost as much to pickle as to build.

The encoding uses the live table's column types (:func:`span_column_types`), so a table the
official exporter created with its own types is written with those.

One span the table cannot hold must not fail the insert of every span grouped with it: a batch
whose conversion fails is converted again span by span, and a block that cannot be encoded is
halved until the rows that fail are found. Those spans become dead letters
(:mod:`tracemill.collector.ingest.deadletter`) and the rest is encoded. What the store itself refuses
is reported as :class:`RowsRefusedError`, apart from the store being down (:class:`StoreError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracemill.collector.ingest.deadletter import DeadSpan, dead_span, span_at
from tracemill.collector.ingest.rows import SPAN_COLUMNS, SpanRows, empty_rows, request_to_rows
from tracemill.collector.store.schema import SPANS_TABLE, quote_identifier
from tracemill.errors import StoreError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = [
    "EncodedBlock",
    "RowsRefusedError",
    "encode_payloads",
    "insert_block",
    "payloads_to_rows",
    "span_column_types",
]


class RowsRefusedError(StoreError):
    """The store refused the rows themselves (a constraint, a value out of range), not for being down:
    inserting the same rows again fails the same way, so the writer splits the group to find them."""


# ClickHouse error codes that are about the inserted values; any other error may pass.
_REFUSAL_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    407,  # DECIMAL_OVERFLOW
    469,  # VIOLATED_CONSTRAINT
})


def refused_by_store(exc: BaseException) -> bool:
    """Whether a driver error says the store refused the values (retrying the same rows cannot help)."""
    from clickhouse_connect.driver.exceptions import DataError

    if isinstance(exc, DataError):
        return True
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        match = re.search(r"Code: (\d+)\.", str(exc))
        code = int(match.group(1)) if match else None
    return code in _REFUSAL_CODES


@dataclass(frozen=True)
class EncodedBlock:
    """Native-format bytes of ``rows`` span rows, and what was left out of them."""

    data: bytes
    rows: int
    failed: list[tuple[int, str]] = field(default_factory=list)
    """Batches that are not an OTLP request at all: ``(batch_id, reason)``."""
    dead: list[DeadSpan] = field(default_factory=list)
    """Spans that cannot become rows of the table (a value it cannot hold), each with its reason."""
    origins: list[tuple[int, int]] = field(default_factory=list)
    """``(batch_id, ordinal)`` of each row, when a slice of the rows was asked for."""


def span_column_types(store: Store) -> tuple[str, ...]:
    """The ClickHouse types of the exporter's 22 columns in the store's ``otel_traces``."""
    rows = store.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        {"db": store.database, "t": SPANS_TABLE},
    ).result_rows
    types: dict[str, str] = {name: type_ for name, type_ in rows}
    missing = [c for c in SPAN_COLUMNS if c not in types]
    if missing:
        raise StoreError(
            f"table {store.database}.{SPANS_TABLE} in {store.location} lacks column(s) {', '.join(missing)}"
        )
    return tuple(types[c] for c in SPAN_COLUMNS)


@dataclass
class _Converted:
    rows: SpanRows
    origins: list[tuple[int, int]]
    failed: list[tuple[int, str]]
    dead: list[DeadSpan]


def _convert(payloads: list[tuple[int, bytes]]) -> _Converted:
    """Merge spooled payloads into one set of columns, isolating what cannot be converted.

    A batch that is not protobuf is reported in ``failed``; a batch whose conversion fails is
    converted again span by span, and the spans that still fail become dead letters, so one bad
    span never blocks the others.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    out = _Converted(empty_rows(), [], [], [])
    rows = out.rows
    for batch_id, payload in payloads:
        try:
            request = ExportTraceServiceRequest.FromString(payload)
        except Exception as exc:
            out.failed.append((batch_id, f"{type(exc).__name__}: {exc}"))
            continue
        before = len(rows[0])
        try:
            request_to_rows(request, into=rows)
            out.origins.extend((batch_id, ordinal) for ordinal in range(len(rows[0]) - before))
            continue
        except Exception:  # a value no check caught, or a bug: find the span, keep the rest
            _truncate(rows, before)
        for ordinal in range(sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)):
            mark = len(rows[0])
            try:
                request_to_rows(span_at(request, ordinal), into=rows)
                out.origins.append((batch_id, ordinal))
            except Exception as exc:
                _truncate(rows, mark)
                reason = f"the span cannot be converted to a row: {type(exc).__name__}: {exc}"
                out.dead.append(dead_span(request, batch_id, ordinal, reason))
    return out


def _truncate(rows: SpanRows, length: int) -> None:
    for column in rows:
        del column[length:]


def payloads_to_rows(payloads: list[tuple[int, bytes]]) -> tuple[SpanRows, list[tuple[int, str]]]:
    """Merge spooled payloads into one set of columns; return them and the batches that failed."""
    converted = _convert(payloads)
    return converted.rows, converted.failed


def _native(rows: SpanRows, column_types: tuple[str, ...]) -> bytes:
    """Rows → Native bytes with clickhouse-connect's serializers; raises on a value a column cannot hold."""
    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext
    from clickhouse_connect.driver.transform import NativeTransform

    context = InsertContext(
        SPANS_TABLE,
        list(SPAN_COLUMNS),
        [get_from_name(name) for name in column_types],
        rows,
        column_oriented=True,
    )
    chunks = list(NativeTransform.build_insert(context))
    if context.insert_exception is not None:
        raise context.insert_exception
    # The first chunk starts with the INSERT statement for an HTTP body; only the Native data is kept.
    first = chunks[0]
    chunks[0] = first[first.index(b"FORMAT Native\n") + len(b"FORMAT Native\n") :]
    return b"".join(chunks)


def _unencodable(rows: SpanRows, column_types: tuple[str, ...], lo: int, hi: int) -> list[tuple[int, str]]:
    """Rows in ``[lo, hi)`` that cannot be encoded, found by halving: ``(row, reason)``."""
    try:
        _native([column[lo:hi] for column in rows], column_types)
        return []
    except Exception as exc:
        if hi - lo == 1:
            return [(lo, f"a value does not fit the table's column: {type(exc).__name__}: {exc}")]
    mid = (lo + hi) // 2
    return _unencodable(rows, column_types, lo, mid) + _unencodable(rows, column_types, mid, hi)


def encode_payloads(
    payloads: list[tuple[int, bytes]], column_types: tuple[str, ...], select: tuple[int, int] | None = None
) -> EncodedBlock:
    """Convert ``(batch_id, protobuf)`` payloads to rows and encode them as one Native block.

    Runs anywhere (a worker process needs no store). What cannot become rows is left out and
    reported (``failed``, ``dead``), the rest is encoded; the outcome depends only on the payloads,
    so a replay encodes the same block. ``select`` = ``(first, end)`` encodes only those of the
    converted rows and reports their ``origins``: the writer's way to split a group the store refused.
    """
    converted = _convert(payloads)
    rows, origins = converted.rows, converted.origins
    if select is not None:
        first, end = select
        rows = [column[first:end] for column in rows]
        origins = origins[first:end]
    count = len(rows[0])
    dead = list(converted.dead) if select is None else []
    if not count:
        return EncodedBlock(b"", 0, converted.failed, dead, origins if select else [])
    try:
        data = _native(rows, column_types)
    except Exception:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        bad = _unencodable(rows, column_types, 0, count)
        payload_of = dict(payloads)
        for row, reason in reversed(bad):
            batch_id, ordinal = origins[row]
            request = ExportTraceServiceRequest.FromString(payload_of[batch_id])
            dead.append(dead_span(request, batch_id, ordinal, reason))
            for column in rows:
                del column[row]
            del origins[row]
        count = len(rows[0])
        data = _native(rows, column_types) if count else b""
    return EncodedBlock(data, count, converted.failed, dead, origins if select else [])


def insert_block(store: Store, block: EncodedBlock, *, dedup_token: str | None) -> None:
    """Insert an encoded block into the store's ``otel_traces``; the same token never stores twice.

    Raises :class:`RowsRefusedError` when the store refuses the values, :class:`StoreError` when it fails.
    """
    if not block.rows:
        return
    from clickhouse_connect.driver.exceptions import ClickHouseError

    settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
    table = f"{quote_identifier(store.database)}.{quote_identifier(SPANS_TABLE)}"
    try:
        store.client.raw_insert(table, list(SPAN_COLUMNS), insert_block=block.data, settings=settings, fmt="Native")
    except (ClickHouseError, OSError) as exc:
        error = RowsRefusedError if refused_by_store(exc) else StoreError
        raise error(f"insert of {block.rows} spans failed in {store.location}: {exc}") from exc
