"""The one conversion from OTLP spans to ``otel_traces`` rows.

Rows are built column-oriented, in the column order of the OpenTelemetry Collector ClickHouse
exporter's INSERT (:data:`SPAN_COLUMNS`), with the values that exporter writes: lowercase hex ids
('' for an absent id), ``Internal``/``Server``/... span kinds, ``Unset``/``Ok``/``Error`` status
codes, and every attribute value turned into a string the way pdata's ``Value.AsString()`` does.
The OTLP receiver and :class:`~tracemill.collector.ingest.exporter.StoreSpanExporter` both go through
:func:`request_to_rows`, so a span is stored the same way whichever path it took.

Value types are the ones clickhouse-connect encodes fastest: timestamps as int nanoseconds
(DateTime64(9) takes the raw ticks), attribute maps as dicts, Nested columns as per-row lists.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from decimal import Decimal
from json.encoder import encode_basestring  # the C string encoder behind json.dumps(ensure_ascii=False)
from typing import TYPE_CHECKING, Any

from tracemill.collector.store.columns import SPAN_COLUMNS

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "SPAN_COLUMNS",
    "SpanRows",
    "any_value_to_string",
    "empty_rows",
    "format_double",
    "request_to_rows",
    "row_count",
    "sdk_spans_to_request",
    "sdk_spans_to_rows",
]

SpanRows = list[list[Any]]
"""Column-oriented span rows: one list per name in :data:`SPAN_COLUMNS`, all of equal length."""

# pdata's SpanKind.String() and StatusCode.String(), indexed by the OTLP enum value.
_SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS_CODES = ("Unset", "Ok", "Error")

_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


def empty_rows() -> SpanRows:
    """Fresh empty columns, to fill with :func:`request_to_rows` (``into=``)."""
    return [[] for _ in SPAN_COLUMNS]


def row_count(rows: SpanRows) -> int:
    return len(rows[0])


def request_to_rows(request: ExportTraceServiceRequest, *, into: SpanRows | None = None) -> SpanRows:
    """Convert an OTLP ``ExportTraceServiceRequest`` (protobuf) to column-oriented ``otel_traces`` rows.

    With ``into``, rows are appended to those columns (to merge several requests into one insert)
    and the same object is returned.
    """
    rows = empty_rows() if into is None else into
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            _append_spans(rows, scope_spans.spans, service, resource, scope_spans.scope)
    return rows


def _append_spans(rows: SpanRows, spans: Any, service: str, resource: dict[str, str], scope: Any) -> None:
    """Append the spans of one instrumentation scope (the hot loop: one call per scope, not per span)."""
    (timestamps, trace_ids, span_ids, parent_ids, trace_states, names, kinds, services, resource_attrs,
     scope_names, scope_versions, span_attrs, durations, status_codes, status_messages, event_times, event_names,
     event_attrs, link_trace_ids, link_span_ids, link_states, link_attrs) = rows
    attributes = _attributes
    n_kinds = len(_SPAN_KINDS)
    n_codes = len(_STATUS_CODES)
    scope_name = scope.name
    scope_version = scope.version
    for span in spans:
        start = span.start_time_unix_nano
        timestamps.append(start)
        trace_id = span.trace_id.hex()
        trace_ids.append("" if trace_id == _ZERO_TRACE_ID else trace_id)
        span_id = span.span_id.hex()
        span_ids.append("" if span_id == _ZERO_SPAN_ID else span_id)
        parent_id = span.parent_span_id.hex()
        parent_ids.append("" if parent_id == _ZERO_SPAN_ID else parent_id)
        trace_states.append(span.trace_state)
        names.append(span.name)
        kind = span.kind
        kinds.append(_SPAN_KINDS[kind] if 0 <= kind < n_kinds else "")
        services.append(service)
        resource_attrs.append(resource)
        scope_names.append(scope_name)
        scope_versions.append(scope_version)
        span_attrs.append(attributes(span.attributes))
        end = span.end_time_unix_nano
        # The exporter subtracts unsigned nanoseconds; an end before the start would wrap
        # around to ~584 years, so it is stored as 0 instead.
        durations.append(end - start if end >= start else 0)
        status = span.status
        code = status.code
        status_codes.append(_STATUS_CODES[code] if 0 <= code < n_codes else "")
        status_messages.append(status.message)
        events = span.events
        if events:
            _append_events(events, event_times, event_names, event_attrs)
        else:
            event_times.append([])
            event_names.append([])
            event_attrs.append([])
        links = span.links
        if links:
            _append_links(links, link_trace_ids, link_span_ids, link_states, link_attrs)
        else:
            link_trace_ids.append([])
            link_span_ids.append([])
            link_states.append([])
            link_attrs.append([])


def _append_events(events: Any, event_times: list[Any], event_names: list[Any], event_attrs: list[Any]) -> None:
    times, names, attrs = [], [], []
    for event in events:
        times.append(event.time_unix_nano)
        names.append(event.name)
        attrs.append(_attributes(event.attributes))
    event_times.append(times)
    event_names.append(names)
    event_attrs.append(attrs)


def _append_links(links: Any, link_trace_ids: list[Any], link_span_ids: list[Any], link_states: list[Any],
                  link_attrs: list[Any]) -> None:
    ids, sids, states, attrs = [], [], [], []
    for link in links:
        ids.append(_hex_id(link.trace_id))
        sids.append(_hex_id(link.span_id))
        states.append(link.trace_state)
        attrs.append(_attributes(link.attributes))
    link_trace_ids.append(ids)
    link_span_ids.append(sids)
    link_states.append(states)
    link_attrs.append(attrs)


def sdk_spans_to_request(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """Encode finished SDK spans as an OTLP request, with the encoder the SDK's OTLP exporters use."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return encode_spans(spans)


def sdk_spans_to_rows(spans: Sequence[ReadableSpan], *, into: SpanRows | None = None) -> SpanRows:
    """SDK spans → OTLP protobuf → rows: the receiver's path, so both produce identical rows."""
    return request_to_rows(sdk_spans_to_request(spans), into=into)


# -- attribute values, as pdata's Value.AsString() writes them ---------------------------------


def _hex_id(raw: bytes) -> str:
    hexed = raw.hex()
    return "" if hexed.strip("0") == "" else hexed


def _attributes(key_values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for kv in key_values:
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = value.string_value
        elif which == "int_value":
            out[kv.key] = str(value.int_value)
        elif which == "bool_value":
            out[kv.key] = "true" if value.bool_value else "false"
        elif which == "double_value":
            out[kv.key] = format_double(value.double_value)
        else:
            out[kv.key] = _other_to_string(value, which)
    return out


def any_value_to_string(value: Any) -> str:
    """An OTLP ``AnyValue`` as a string: what the exporter stores in an attribute map."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return str(value.int_value)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "double_value":
        return format_double(value.double_value)
    return _other_to_string(value, which)


def _other_to_string(value: Any, which: str | None) -> str:
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if which in ("array_value", "kvlist_value"):
        try:
            return _json(value)
        except _NotJson:  # Go's json.Marshal fails on NaN/Inf and AsString() then yields ''
            return ""
    return ""


def format_double(number: float) -> str:
    """A float as Go's ``float64AsString`` writes it (ES6 number formatting, as in JSON)."""
    text = repr(number)
    if "e" not in text and "n" not in text:  # plain decimal: the common case
        return text[:-2] if text.endswith(".0") else text
    if math.isnan(number):
        return "json: unsupported value: NaN"
    if math.isinf(number):
        return "json: unsupported value: " + ("+Inf" if number > 0 else "-Inf")
    magnitude = abs(number)
    if magnitude < 1e-6 or magnitude >= 1e21:
        # Go writes e-07 as e-7 but keeps e-100 and e+21; Python's repr has the same mantissa.
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    fixed = format(Decimal(text), "f")  # repr chose an exponent where Go does not (1e16, 1.5e-05)
    return fixed[:-2] if fixed.endswith(".0") else fixed


class _NotJson(ValueError):
    pass


def _json(value: Any) -> str:
    """An AnyValue as Go's encoding/json writes ``Value.AsRaw()`` (sorted keys, no HTML escaping)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return _json_string(value.string_value)
    if which == "int_value":
        return str(value.int_value)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "double_value":
        number = value.double_value
        if math.isnan(number) or math.isinf(number):
            raise _NotJson
        return format_double(number)
    if which == "bytes_value":
        return '"' + base64.b64encode(value.bytes_value).decode("ascii") + '"'
    if which == "array_value":
        return "[" + ",".join(_json(v) for v in value.array_value.values) + "]"
    if which == "kvlist_value":
        members = {kv.key: kv.value for kv in value.kvlist_value.values}
        return "{" + ",".join(_json_string(k) + ":" + _json(members[k]) for k in sorted(members)) + "}"
    return "null"


def _json_string(text: str) -> str:
    encoded = encode_basestring(text)
    if "\u2028" in encoded or "\u2029" in encoded:  # Go escapes these for JavaScript's sake
        encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return encoded
