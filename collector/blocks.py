"""Spooled payloads → one ClickHouse Native block of ``otel_traces`` rows, and its insert.

This is the writer's insert split in two halves so the expensive half can run in another
process: :func:`encode_payloads` does the CPU work in pure Python (protobuf → rows with
:func:`~tracemill.collector.rows.request_to_rows`, the one conversion, then rows → Native bytes
with clickhouse-connect's own column serializers, exactly what ``client.insert`` does), and
:func:`insert_block` hands the bytes to the store with the batch's deduplication token. A
Native block is plain bytes, so it crosses a process boundary for the cost of a copy, where
the rows themselves (lists of dicts) would cost as much to pickle as to build.

The encoding uses the live table's column types (:func:`span_column_types`), so a table the
official exporter created with its own types is written with those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracemill.collector.rows import SPAN_COLUMNS, SpanRows, empty_rows, request_to_rows
from tracemill.collector.schema import SPANS_TABLE, quote_identifier
from tracemill.errors import StoreError

if TYPE_CHECKING:
    from tracemill.collector.store import Store

__all__ = ["EncodedBlock", "encode_payloads", "insert_block", "payloads_to_rows", "span_column_types"]


@dataclass(frozen=True)
class EncodedBlock:
    """Native-format bytes of ``rows`` span rows, and the batches that could not be converted."""

    data: bytes
    rows: int
    failed: list[tuple[int, str]] = field(default_factory=list)


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


def payloads_to_rows(payloads: list[tuple[int, bytes]]) -> tuple[SpanRows, list[tuple[int, str]]]:
    """Merge spooled payloads into one set of columns; return them and the batches that failed.

    A batch that cannot be converted is left out (its partial rows are cut off again) and
    reported as ``(batch_id, reason)``, so one bad batch never blocks the others.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rows = empty_rows()
    failed: list[tuple[int, str]] = []
    for batch_id, payload in payloads:
        before = len(rows[0])
        try:
            request_to_rows(ExportTraceServiceRequest.FromString(payload), into=rows)
        except Exception as exc:  # a bug or a payload no check caught: isolate it, keep the rest
            for column in rows:
                del column[before:]
            failed.append((batch_id, f"{type(exc).__name__}: {exc}"))
    return rows, failed


def encode_payloads(payloads: list[tuple[int, bytes]], column_types: tuple[str, ...]) -> EncodedBlock:
    """Convert ``(batch_id, protobuf)`` payloads to rows and encode them as one Native block.

    Runs anywhere (a worker process needs no store). A batch whose conversion fails is left out
    and reported in ``failed``; the others are encoded.
    """
    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext
    from clickhouse_connect.driver.transform import NativeTransform

    rows, failed = payloads_to_rows(payloads)
    count = len(rows[0])
    if not count:
        return EncodedBlock(b"", 0, failed)
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
    return EncodedBlock(b"".join(chunks), count, failed)


def insert_block(store: Store, block: EncodedBlock, *, dedup_token: str | None) -> None:
    """Insert an encoded block into the store's ``otel_traces``; the same token never stores twice."""
    if not block.rows:
        return
    from clickhouse_connect.driver.exceptions import ClickHouseError

    settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
    table = f"{quote_identifier(store.database)}.{quote_identifier(SPANS_TABLE)}"
    try:
        store.client.raw_insert(table, list(SPAN_COLUMNS), insert_block=block.data, settings=settings, fmt="Native")
    except (ClickHouseError, OSError) as exc:
        raise StoreError(f"insert of {block.rows} spans failed in {store.location}: {exc}") from exc
