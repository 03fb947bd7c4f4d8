"""Decoding OTLP/HTTP trace requests: content type, content encoding, size limit, protobuf or JSON.

Everything a client sends is checked here before anything is stored, so a bad request fails
alone with a message that says what was wrong (:class:`~tracemill.errors.PayloadError`), and
the spool only ever holds payloads that parse.

What is accepted, as the OTLP/HTTP specification defines it:

- ``Content-Type: application/x-protobuf`` (binary protobuf) or ``application/json`` (the
  protobuf JSON mapping, with two OTLP rules on top: trace and span ids are hex strings, not
  base64, and enums are integers; 64-bit integers may be numbers or strings; unknown fields
  are ignored);
- ``Content-Encoding: gzip`` or ``deflate``, or none;
- at most ``max_bytes`` both as sent and once decompressed (so a small gzip bomb is refused too).

Spans the store cannot hold (an invalid trace or span id: wrong length, or all zeros; a time
past 2262, which ``otel_traces``' DateTime64(9) cannot hold) are dropped and counted, which the
receiver reports as OTLP partial success; the rest of the request is kept. Attribute values nested
deeper than the protobuf decoder allows are cut (:mod:`tracemill.collector.ingest.nesting`) rather than
failing the whole request.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tracemill.collector.ingest.nesting import CUT_ATTRIBUTE, cut_deep_json, cut_deep_values, is_depth_error
from tracemill.collector.ingest.versions import stamp_request_safely
from tracemill.errors import PayloadError, PayloadTooLargeError, UnsupportedMediaTypeError

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = [
    "JSON",
    "MAX_TIME_NANOS",
    "PROTOBUF",
    "DecodedRequest",
    "Encoding",
    "UnsupportedMediaTypeError",
    "decode_request",
    "decompress",
    "media_kind",
    "parse_json",
    "parse_protobuf",
    "status_body",
    "validate_spans",
]

Encoding = Literal["protobuf", "json"]
PROTOBUF: Encoding = "protobuf"
JSON: Encoding = "json"

_MEDIA_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": PROTOBUF,
    "application/protobuf": PROTOBUF,
    "application/json": JSON,
}
_SUPPORTED_TYPES = "application/x-protobuf or application/json"
_SUPPORTED_ENCODINGS = "gzip, deflate or none"


@dataclass(frozen=True)
class DecodedRequest:
    """A request that passed every check, ready to be spooled."""

    payload: bytes
    """The request as binary protobuf, invalid spans removed: what the spool stores."""
    accepted_spans: int
    rejected_spans: int = 0
    rejection_message: str = ""
    """Why spans were rejected (OTLP ``partial_success.error_message``); '' when none were."""


def media_kind(content_type: str | None) -> Encoding:
    """Which OTLP encoding a Content-Type names; raises :class:`UnsupportedMediaTypeError` otherwise."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    kind = _MEDIA_TYPES.get(media)
    if kind is None:
        shown = repr(content_type) if content_type else "none"
        raise UnsupportedMediaTypeError(f"Content-Type {shown} is not supported; send {_SUPPORTED_TYPES}")
    return kind


def decompress(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding``, refusing output over ``max_bytes`` before it is all in memory."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, zlib.MAX_WBITS | 16, "gzip", max_bytes)
    if encoding == "deflate":
        return _inflate(body, zlib.MAX_WBITS, "deflate", max_bytes)
    raise UnsupportedMediaTypeError(
        f"Content-Encoding {content_encoding!r} is not supported; use {_SUPPORTED_ENCODINGS}"
    )


def _inflate(body: bytes, wbits: int, name: str, max_bytes: int) -> bytes:
    out = bytearray()
    data = body
    # A gzip body may hold several members one after the other; each is inflated in turn.
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise PayloadError(f"the {name} body cannot be decompressed ({exc})") from None
        if len(out) > max_bytes:
            raise PayloadTooLargeError(
                f"the request decompresses to more than the limit of {max_bytes} bytes; send smaller batches"
            )
        if inflater.unconsumed_tail:  # stopped at the limit with input left over
            raise PayloadTooLargeError(
                f"the request decompresses to more than the limit of {max_bytes} bytes; send smaller batches"
            )
        if not inflater.eof:
            raise PayloadError(f"the {name} body is truncated: the compressed stream ends before its end marker")
        data = inflater.unused_data
        if not data or name != "gzip":
            if data:
                raise PayloadError(f"the {name} body has {len(data)} bytes of trailing garbage")
            return bytes(out)


def parse_protobuf(data: bytes) -> ExportTraceServiceRequest:
    """Binary protobuf → request; raises :class:`PayloadError` naming what could not be read.

    Attribute values nested deeper than the decoder reads are cut (see :mod:`tracemill.collector.ingest.nesting`).
    """
    return _parse_protobuf(data)[0]


def _parse_protobuf(data: bytes) -> tuple[ExportTraceServiceRequest, bool]:
    """The request, and whether values had to be cut to decode it."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
        return request, False
    except (DecodeError, RuntimeError, ValueError) as exc:
        error: Exception = exc
    if is_depth_error(error):
        try:
            request.ParseFromString(cut_deep_values(data))
            return request, True
        except (DecodeError, RuntimeError, ValueError) as exc:
            error = exc
    raise PayloadError(f"the body is not a valid protobuf ExportTraceServiceRequest ({error or 'decode error'})")


def parse_json(data: bytes) -> ExportTraceServiceRequest:
    """OTLP JSON → request; raises :class:`PayloadError` naming the field that is wrong.

    Attribute values nested deeper than the protobuf decoder reads are cut, as for protobuf.
    """
    return _parse_json(data)[0]


def _parse_json(data: bytes) -> tuple[ExportTraceServiceRequest, bool]:
    """The request, and whether values had to be cut."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        document = json.loads(data)
    except RecursionError:
        raise PayloadError("the JSON body is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"the body is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise PayloadError(
            f"the JSON body must be an object with 'resourceSpans' (got {type(document).__name__})"
        )
    _hex_ids_to_base64(document)
    cut = cut_deep_json(document) > 0
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise PayloadError(f"the JSON body is not a valid OTLP ExportTraceServiceRequest: {exc}") from None
    except RecursionError:
        raise PayloadError("the JSON body is nested too deeply") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise PayloadError(f"the JSON body is not a valid OTLP ExportTraceServiceRequest ({exc})") from None
    return request, cut


# The protobuf JSON mapping reads bytes fields as base64; OTLP writes ids as hex. These are the only
# bytes fields that carry ids, so they are rewritten in place before the generic parser sees them.
_SPAN_ID_FIELDS = (("traceId", "trace_id", 16), ("spanId", "span_id", 8), ("parentSpanId", "parent_span_id", 8))
_LINK_ID_FIELDS = (("traceId", "trace_id", 16), ("spanId", "span_id", 8))


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    for r, resource_spans in _items(document, "resourceSpans", "resource_spans"):
        for s, scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for i, span in _items(scope_spans, "spans"):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                _convert_ids(span, _SPAN_ID_FIELDS, where)
                for k, link in _items(span, "links"):
                    _convert_ids(link, _LINK_ID_FIELDS, f"{where}.links[{k}]")


def _items(parent: Any, *names: str) -> list[tuple[int, Any]]:
    if not isinstance(parent, dict):
        return []
    for name in names:
        value = parent.get(name)
        if isinstance(value, list):
            return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]
    return []


def _convert_ids(obj: dict[str, Any], fields: tuple[tuple[str, str, int], ...], where: str) -> None:
    for camel, snake, size in fields:
        for key in (camel, snake):
            value = obj.get(key)
            if not isinstance(value, str):
                continue
            try:
                raw = binascii.unhexlify(value)
            except (binascii.Error, ValueError):
                raise PayloadError(
                    f"{where}.{camel} is {value[:80]!r}, not a hex id; OTLP JSON writes ids as "
                    f"{size * 2} hex digits"
                ) from None
            obj[key] = base64.b64encode(raw).decode("ascii")


MAX_TIME_NANOS = (1 << 63) - 1
"""The latest time ``otel_traces`` holds: DateTime64(9) counts signed 64-bit nanoseconds (2262-04-11T23:47:16Z)."""


def validate_spans(request: ExportTraceServiceRequest) -> tuple[int, int, str]:
    """Drop spans the store cannot hold; return (accepted, rejected, message).

    A trace id must be 16 bytes and a span id 8 bytes, neither all zeros; a parent span id is
    empty or 8 bytes. Such spans cannot be stored meaningfully (no trace to put them in). A start,
    end or event time past :data:`MAX_TIME_NANOS` does not fit ``otel_traces`` (its DateTime64(9)
    columns are signed 64-bit nanoseconds), and one such span would fail the insert of every span
    spooled with it. The OTLP specification has the receiver reject such spans while keeping the
    rest of the request.
    """
    accepted = 0
    rejected = 0
    first_reason = ""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            bad: list[int] = []
            for index, span in enumerate(spans):
                reason = _span_problem(span.trace_id, span.span_id, span.parent_span_id) or _time_problem(span)
                if reason:
                    bad.append(index)
                    if not first_reason:
                        first_reason = f"span {span.name[:80]!r} {reason}"
            if bad:
                for index in reversed(bad):
                    del spans[index]
                rejected += len(bad)
            accepted += len(spans)
    message = ""
    if rejected:
        message = f"{rejected} span(s) rejected, e.g. {first_reason}"
    return accepted, rejected, message


_ZERO_16 = bytes(16)
_ZERO_8 = bytes(8)


def _span_problem(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> str:
    if len(trace_id) != 16 or trace_id == _ZERO_16:
        return f"has an invalid trace id {trace_id.hex()!r}; it must be 16 bytes, not all zero"
    if len(span_id) != 8 or span_id == _ZERO_8:
        return f"has an invalid span id {span_id.hex()!r}; it must be 8 bytes, not all zero"
    if parent_span_id and len(parent_span_id) != 8:
        return f"has an invalid parent span id {parent_span_id.hex()!r}; it must be empty or 8 bytes"
    return ""


def _time_problem(span: Any) -> str:
    for what, nanos in (("start", span.start_time_unix_nano), ("end", span.end_time_unix_nano)):
        if nanos > MAX_TIME_NANOS:
            return f"has {what} time {nanos} ns, {_TIME_LIMIT}"
    for event in span.events:
        if event.time_unix_nano > MAX_TIME_NANOS:
            return f"has event {event.name[:80]!r} at time {event.time_unix_nano} ns, {_TIME_LIMIT}"
    return ""


_TIME_LIMIT = (
    f"past the latest time the store holds ({MAX_TIME_NANOS} ns, 2262-04-11T23:47:16Z); "
    "send times as nanoseconds since 1970-01-01"
)


def decode_request(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None = None,
    max_bytes: int,
) -> DecodedRequest:
    """Check and decode one OTLP/HTTP trace request body.

    Raises :class:`UnsupportedMediaTypeError` (415), :class:`PayloadTooLargeError` (413) or
    :class:`PayloadError` (400), each with a message fit to send back to the client.
    """
    kind = media_kind(content_type)
    if len(body) > max_bytes:
        raise PayloadTooLargeError(
            f"the request body is {len(body)} bytes, over the limit of {max_bytes} bytes; send smaller batches"
        )
    data = decompress(body, content_encoding, max_bytes=max_bytes)
    request, cut = _parse_protobuf(data) if kind == PROTOBUF else _parse_json(data)
    accepted, rejected, message = validate_spans(request)
    if cut:  # OTLP allows a message with no rejected spans: a warning
        note = f"attribute values nested deeper than the decoder reads were cut (see {CUT_ATTRIBUTE} on the spans)"
        message = f"{message}; {note}" if message else note
    stamped = stamp_request_safely(request)  # configuration versions for spans from other SDKs
    # Binary protobuf that needed no changes is spooled as received: no re-encoding on the hot path.
    payload = data if kind == PROTOBUF and not rejected and not cut and not stamped else request.SerializeToString()
    return DecodedRequest(
        payload=payload, accepted_spans=accepted, rejected_spans=rejected, rejection_message=message
    )


def status_body(encoding: Encoding, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` in the request's encoding: the error body OTLP/HTTP specifies."""
    if encoding == PROTOBUF:
        from google.rpc.status_pb2 import Status

        return Status(code=code, message=message).SerializeToString()
    return json.dumps({"code": code, "message": message}).encode()
