"""The OTLP → ``otel_traces`` conversion of :mod:`tracemill.collector.ingest.rows`, run inside ClickHouse.

Converting spans to rows in Python costs about 1 µs per attribute (protobuf field access), more
than ClickHouse spends storing the row. So the writer hands ClickHouse the spooled OTLP requests
as they are: its ``Protobuf`` input format decodes them with a schema generated here from the
installed OTLP descriptors, and one ``INSERT … SELECT … ARRAY JOIN`` turns them into the
exporter's 22 columns, in C++ and without the GIL.

The SQL writes exactly what :func:`~tracemill.collector.ingest.rows.request_to_rows` writes (the tests
hold the two against each other): hex ids, kind and status names, attribute values as pdata's
``AsString()`` (Go's float formatting, sorted-key JSON for lists and maps). What it does not
cover exactly it refuses instead of approximating: key-value-list values and lists holding lists
(the reference writes their JSON with sorted keys at any depth), strings in lists with control
characters JSON escapes with hex letters (ClickHouse writes them upper case, Go lower case),
duplicate keys in one attribute list (the reference keeps the last), timestamps past 2262. The
query then fails before it writes anything (:class:`NeedsReferenceConversion`) and the writer
converts that group in Python instead, under the same deduplication token.

Why a refusal writes nothing: the insert settings squash the whole group into one block, so it
is written as one part after every row was computed, or not at all; and a replay under the same
token is dropped.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tracemill.collector.ingest.rows import SPAN_COLUMNS
from tracemill.collector.store.schema import SPANS_TABLE, quote_identifier, quote_literal
from tracemill.errors import StoreError

if TYPE_CHECKING:
    from tracemill.collector.store.store import Store

__all__ = [
    "NeedsReferenceConversion",
    "insert_requests",
    "length_delimited",
    "otlp_proto_schema",
    "select_rows_sql",
    "supports_sql_conversion",
]

_REFUSAL = "tracemill: these spans need the reference conversion"

# -- the OTLP schema, as ClickHouse's Protobuf format reads it -------------------------------------


@functools.cache
def otlp_proto_schema() -> str:
    """``ExportTraceServiceRequest`` and what it contains, as proto3 text, from the installed descriptors.

    Generated rather than vendored, so it always matches the ``opentelemetry-proto`` the receiver
    validated the payload with. Enums become ``int32`` (same wire encoding, no enum-name checks).
    """
    from google.protobuf.descriptor import FieldDescriptor
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    scalar = {
        FieldDescriptor.TYPE_STRING: "string",
        FieldDescriptor.TYPE_BYTES: "bytes",
        FieldDescriptor.TYPE_BOOL: "bool",
        FieldDescriptor.TYPE_INT32: "int32",
        FieldDescriptor.TYPE_INT64: "int64",
        FieldDescriptor.TYPE_UINT32: "uint32",
        FieldDescriptor.TYPE_UINT64: "uint64",
        FieldDescriptor.TYPE_SINT32: "sint32",
        FieldDescriptor.TYPE_SINT64: "sint64",
        FieldDescriptor.TYPE_FIXED32: "fixed32",
        FieldDescriptor.TYPE_FIXED64: "fixed64",
        FieldDescriptor.TYPE_SFIXED32: "sfixed32",
        FieldDescriptor.TYPE_SFIXED64: "sfixed64",
        FieldDescriptor.TYPE_DOUBLE: "double",
        FieldDescriptor.TYPE_FLOAT: "float",
        FieldDescriptor.TYPE_ENUM: "int32",
    }
    messages: dict[str, str] = {}

    def field_line(field: FieldDescriptor, indent: str) -> str:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            emit(field.message_type)
            type_name = field.message_type.name
        else:
            type_name = scalar[field.type]
        repeated = "repeated " if field.is_repeated else ""
        return f"{indent}{repeated}{type_name} {field.name} = {field.number};"

    def emit(message: Any) -> None:  # a protobuf Descriptor (protobuf ships no type information)
        name = message.full_name
        if name in messages:
            return
        messages[name] = ""  # reserve: messages refer to each other (AnyValue ↔ ArrayValue)
        lines = [f"message {message.name} {{"]
        written_oneofs: set[str] = set()
        for field in message.fields:
            oneof = field.containing_oneof
            if oneof is not None and not oneof.name.startswith("_"):  # "_x": proto3 optional, not a oneof
                if oneof.name not in written_oneofs:
                    written_oneofs.add(oneof.name)
                    lines.append(f"  oneof {oneof.name} {{")
                    lines.extend(field_line(member, "    ") for member in oneof.fields)
                    lines.append("  }")
                continue
            lines.append(field_line(field, "  "))
        lines.append("}")
        messages[name] = "\n".join(lines)

    emit(ExportTraceServiceRequest.DESCRIPTOR)
    return 'syntax = "proto3";\n\n' + "\n\n".join(messages.values()) + "\n"


# The columns ClickHouse reads from each request. Fields left out are skipped by the decoder.
# With input_format_protobuf_oneof_presence, the ``value`` column holds the number of the
# AnyValue member that is set (1 string, 2 bool, 3 int, 4 double, 5 array, 6 kvlist, 7 bytes).
_SCALARS = "string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String"
_VALUE = f"Tuple({_SCALARS}, array_value Tuple(values Array(Tuple({_SCALARS}, value UInt8))), value UInt8)"
_ATTRIBUTES = f"Array(Tuple(key String, value {_VALUE}))"
STRUCTURE = (
    "resource_spans Array(Tuple("
    f"resource Tuple(attributes {_ATTRIBUTES}), "
    "scope_spans Array(Tuple(scope Tuple(name String, version String), spans Array(Tuple("
    "trace_id String, span_id String, trace_state String, parent_span_id String, name String, kind Int32, "
    f"start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_ATTRIBUTES}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_ATTRIBUTES})), "
    f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_ATTRIBUTES})), "
    "status Tuple(message String, code Int32)"
    "))))))"
)
"""The ClickHouse structure of one ``ExportTraceServiceRequest``, as far as ``otel_traces`` needs it."""


# -- the conversion, as SQL expressions --------------------------------------------------------------
#
# Query planning, not execution, is most of what a large expression costs here (a few hundred
# milliseconds for a naive version of this query, against about 3 µs per span to run it), so each
# conversion is written once: the resource's, the span's own, its events' and its links' attributes
# are converted as one flat list per span and sliced back apart, in one subquery over one chain of
# ARRAY JOINs.

_MAX_INT64 = 9_223_372_036_854_775_807


def _double(x: str) -> str:
    """Go's float64 formatting: ClickHouse's shortest round-trip digits, with Go's ``e+`` exponent."""
    return (
        f"multiIf(isNaN({x}), 'json: unsupported value: NaN', "
        f"isInfinite({x}), if({x} > 0, 'json: unsupported value: +Inf', 'json: unsupported value: -Inf'), "
        f"replaceRegexpOne(toString({x}), 'e([0-9])', 'e+\\\\1'))"
    )


def _array_json(items: str) -> str:
    """A list of scalar AnyValues as Go's encoding/json writes it; '' when it holds NaN or ±Inf
    (json.Marshal fails on those and ``AsString()`` then yields '')."""
    element = (
        "multiIf(x.value = 1, toJSONString(x.string_value), x.value = 3, toString(x.int_value), "
        "x.value = 2, if(x.bool_value, 'true', 'false'), x.value = 4, "
        f"{_double('x.double_value')}, x.value = 7, concat('\"', base64Encode(x.bytes_value), '\"'), 'null')"
    )
    return (
        f"if(arrayExists(x -> x.value = 4 AND NOT isFinite(x.double_value), {items}), '', "
        f"concat('[', arrayStringConcat(arrayMap(x -> {element}, {items}), ','), ']'))"
    )


def _value_strings(attributes: str) -> str:
    """Each attribute value of a list as pdata's ``AsString()``: what the exporter stores in the map."""
    v = f"{attributes}.value"
    return (
        "arrayMap((w, sv, iv, bv, dv, yv, av) -> multiIf(w = 1, sv, w = 3, toString(iv), "
        f"w = 2, if(bv, 'true', 'false'), w = 4, {_double('dv')}, w = 7, base64Encode(yv), "
        f"w = 5, {_array_json('av')}, ''), "
        f"{v}.value, {v}.string_value, {v}.int_value, {v}.bool_value, {v}.double_value, {v}.bytes_value, "
        f"{v}.array_value.values)"
    )


def _values_uncovered(attributes: str) -> str:
    """True when a value is a key-value list, or a list holding a list (the reference's JSON for those,
    sorted keys at any depth, is left to it), or a list holding a string with a control character
    that JSON escapes with hex letters (ClickHouse writes ``\\u001F``, Go ``\\u001f``)."""
    v = f"{attributes}.value"
    return (
        f"(has({v}.value, 6) OR hasAny(arrayFlatten({v}.array_value.values.value), [5, 6]) "
        f"OR arrayExists(x -> match(x, '[\\\\x0b\\\\x0e\\\\x0f\\\\x1a-\\\\x1f]'), "
        f"arrayFlatten({v}.array_value.values.string_value)))"
    )


def _repeats_keys(keys: str) -> str:
    """True when a key repeats within one list (the reference keeps the last value; a Map keeps both)."""
    return f"(arrayUniq({keys}) != length({keys}))"


def _hex_id(x: str, zero_bytes: int) -> str:
    """Lowercase hex; the all-zero id of its length is stored as '' (the exporter's empty id)."""
    zero = "'" + "\\0" * zero_bytes + "'"
    return f"if({x} = {zero}, '', lower(hex({x})))"


def _link_hex_id(x: str) -> str:
    """Links: an all-zero id of any length is stored as ''."""
    return f"if(length(replaceAll({x}, '\\0', '')) = 0, '', lower(hex({x})))"


def _nanos(x: str) -> str:
    return f"fromUnixTimestamp64Nano(toInt64({x}))"


def select_rows_sql(source: str) -> str:
    """``SELECT`` of the 22 exporter columns (``SPAN_COLUMNS`` order) from OTLP requests read from ``source``.

    Fails with ``throwIf`` (before any row leaves it) when a span holds something only the
    reference conversion writes exactly; see the module docstring.
    """
    columns = _column_expressions()
    assert tuple(columns) == SPAN_COLUMNS
    select_list = ",\n    ".join(f"{expr} AS {quote_identifier(name)}" for name, expr in columns.items())
    return f"SELECT\n    {select_list}\nFROM ({_spans_query(source)})"


_FLAT = (
    "arrayConcat(rs.resource.attributes, s.attributes, arrayFlatten(s.events.attributes), "
    "arrayFlatten(s.links.attributes))"
)
"""One flat list of attributes per span: its resource's, its own, each event's, each link's."""


def _uncovered() -> str:
    """True for a span holding something only the reference conversion writes exactly."""
    return " OR ".join(
        [
            _values_uncovered(_FLAT),
            _repeats_keys("rs.resource.attributes.key"),
            _repeats_keys("s.attributes.key"),
            f"arrayExists(k -> {_repeats_keys('k')}, s.events.attributes.key)",
            f"arrayExists(k -> {_repeats_keys('k')}, s.links.attributes.key)",
            f"s.start_time_unix_nano > {_MAX_INT64}",
            f"arrayExists(t -> t > {_MAX_INT64}, s.events.time_unix_nano)",
        ]
    )


def _spans_query(source: str) -> str:
    """One row per span of the requests in ``source``, with the flat attribute list and its counts."""
    return (
        "SELECT ss.scope.name AS scope_name, ss.scope.version AS scope_version, "
        "s.trace_id AS trace_id, s.span_id AS span_id, s.parent_span_id AS parent_span_id, "
        "s.trace_state AS trace_state, s.name AS name, s.kind AS kind, s.start_time_unix_nano AS start_nanos, "
        "s.end_time_unix_nano AS end_nanos, s.status.code AS status_code, s.status.message AS status_message, "
        "s.events.time_unix_nano AS event_nanos, s.events.name AS event_names, "
        "s.links.trace_id AS link_trace_ids, s.links.span_id AS link_span_ids, s.links.trace_state AS link_states, "
        f"{_FLAT}.key AS keys, {_value_strings(_FLAT)} AS values, "
        "rs.resource.attributes.key AS resource_keys, length(resource_keys) AS resource_count, "
        "length(s.attributes) AS span_count, "
        "arrayMap(a -> length(a), s.events.attributes) AS event_counts, "
        "arrayMap(a -> length(a), s.links.attributes) AS link_counts, "
        f"{_uncovered()} AS uncovered "
        f"FROM {source} ARRAY JOIN resource_spans AS rs ARRAY JOIN rs.scope_spans AS ss ARRAY JOIN ss.spans AS s"
    )


def _sliced_map(first: str, count: str) -> str:
    return f"mapFromArrays(arraySlice(keys, {first}, {count}), arraySlice(values, {first}, {count}))"


def _sliced_maps(counts: str, first: str) -> str:
    """One Map per event (or link), cut from the flat list: ``first`` is where the first one starts."""
    return f"arrayMap((end, n) -> {_sliced_map(f'{first} + end - n', 'n')}, arrayCumSum({counts}), {counts})"


def _column_expressions() -> dict[str, str]:
    """Each exporter column's expression over :func:`_spans_query`'s row."""
    events_from = "resource_count + span_count + 1"
    kinds = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"
    codes = "['Unset', 'Ok', 'Error']"
    return {
        "Timestamp": _nanos("start_nanos"),
        "TraceId": _hex_id("trace_id", 16),
        "SpanId": _hex_id("span_id", 8),
        "ParentSpanId": _hex_id("parent_span_id", 8),
        "TraceState": "trace_state",
        "SpanName": "name",
        "SpanKind": f"if(kind BETWEEN 0 AND 5, {kinds}[kind + 1], '')",
        # The resource's attributes come first in the flat list, so a position among them is one in it.
        "ServiceName": "values[indexOf(resource_keys, 'service.name')]",
        "ResourceAttributes": _sliced_map("1", "resource_count"),
        "ScopeName": "scope_name",
        "ScopeVersion": "scope_version",
        "SpanAttributes": _sliced_map("resource_count + 1", "span_count"),
        # throwIf returns 0, so Duration is unchanged; as a column (not a WHERE) it costs nothing to plan.
        "Duration": f"if(end_nanos >= start_nanos, end_nanos - start_nanos, 0) + throwIf(uncovered, '{_REFUSAL}')",
        "StatusCode": f"if(status_code BETWEEN 0 AND 2, {codes}[status_code + 1], '')",
        "StatusMessage": "status_message",
        "Events.Timestamp": f"arrayMap(t -> {_nanos('t')}, event_nanos)",
        "Events.Name": "event_names",
        "Events.Attributes": _sliced_maps("event_counts", events_from),
        "Links.TraceId": f"arrayMap(i -> {_link_hex_id('i')}, link_trace_ids)",
        "Links.SpanId": f"arrayMap(i -> {_link_hex_id('i')}, link_span_ids)",
        "Links.TraceState": "link_states",
        "Links.Attributes": _sliced_maps("link_counts", f"{events_from} + arraySum(event_counts)"),
    }


# -- the insert --------------------------------------------------------------------------------------


class NeedsReferenceConversion(Exception):
    """ClickHouse did not store the group; convert it with :mod:`~tracemill.collector.ingest.rows` instead.

    ``expected`` is True for the SQL's own refusal (values it leaves to the reference), False for
    any other error of the query, which the reference conversion then meets on its own terms.
    """

    def __init__(self, message: str, *, expected: bool) -> None:
        super().__init__(message)
        self.expected = expected


def length_delimited(payloads: Sequence[bytes]) -> bytes:
    """Serialized requests framed as ClickHouse's ``Protobuf`` format reads a stream of messages."""
    from google.protobuf.internal.encoder import _VarintBytes

    return b"".join(_VarintBytes(len(payload)) + payload for payload in payloads)


def supports_sql_conversion(store: Store) -> bool:
    """The conversion reads the requests with ``file()``, so it needs the engine in this process.

    A ClickHouse server would read them from the request body with ``input()``; that path is not
    built yet, and a server store keeps the reference conversion.
    """
    return store.embedded


_ONE_BLOCK = 1 << 40


@functools.cache
def _schema_file() -> str:
    """The schema as a file of this process (removed at exit), named by absolute path.

    Not ``format_schema_source='string'``: that makes the engine cache the text in a
    ``__cache__`` directory under the current working directory, wherever the server was started.
    """
    import atexit
    import shutil

    directory = tempfile.mkdtemp(prefix="tracemill-schema-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = os.path.join(directory, "otlp_trace.proto")
    with open(path, "w", encoding="utf-8") as file:
        file.write(otlp_proto_schema())
    return path


def insert_requests(store: Store, payloads: Iterable[bytes], *, dedup_token: str | None) -> None:
    """Insert serialized ``ExportTraceServiceRequest`` payloads into ``otel_traces`` as one block.

    ``payloads`` are written to a file one at a time as they come (an iterator that reads them
    from the spool keeps one in memory at a time, however large the group).
    Raises :class:`NeedsReferenceConversion` when ClickHouse refuses the payloads (nothing of
    them is stored then), :class:`~tracemill.errors.StoreError` when the store fails.
    """
    from clickhouse_connect.driver.exceptions import ClickHouseError
    settings = {
        "format_schema": f"{_schema_file()}:ExportTraceServiceRequest",
        "input_format_protobuf_oneof_presence": 1,
        "output_format_json_escape_forward_slashes": 0,  # toJSONString, as Go writes '/'
        # Squash the whole group into one block (neither threshold is reached before the end), so
        # it is written whole or not at all, under one token.
        "min_insert_block_size_rows": _ONE_BLOCK,
        "min_insert_block_size_bytes": _ONE_BLOCK,
        "max_insert_block_size": _ONE_BLOCK,
    }
    if dedup_token:
        settings["insert_deduplication_token"] = dedup_token
    fd, path = tempfile.mkstemp(prefix="tracemill-otlp-", suffix=".pb")
    count = 0
    try:
        with os.fdopen(fd, "wb") as file:
            for payload in payloads:
                file.write(length_delimited([payload]))
                count += 1
        if not count:
            return
        source = f"file({quote_literal(path)}, 'Protobuf', {quote_literal(STRUCTURE)})"
        table = f"{quote_identifier(store.database)}.{quote_identifier(SPANS_TABLE)}"
        columns = ", ".join(quote_identifier(c) for c in SPAN_COLUMNS)
        clause = ", ".join(f"{name} = {quote_literal(str(value))}" for name, value in settings.items())
        sql = f"INSERT INTO {table} ({columns}) SETTINGS {clause}\n{select_rows_sql(source)}"
        try:
            store.client.command(sql)
        except ClickHouseError as exc:
            expected = _REFUSAL in str(exc)
            message = "values the SQL conversion leaves to the reference" if expected else str(exc)
            raise NeedsReferenceConversion(message, expected=expected) from exc
        except OSError as exc:
            raise StoreError(f"insert of {count} requests failed in {store.location}: {exc}") from exc
    finally:
        os.unlink(path)
