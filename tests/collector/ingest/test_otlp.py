"""Decoding OTLP/HTTP request bodies: encodings, compression, limits, JSON rules, invalid spans."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.servers import make_request
from tracemill.collector.ingest.otlp import UnsupportedMediaTypeError, decode_request, media_kind
from tracemill.errors import PayloadError, PayloadTooLargeError

LIMIT = 1 << 20
TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"


def _decode(body: bytes, content_type: str = "application/x-protobuf", encoding: str | None = None, limit=LIMIT):
    return decode_request(body, content_type=content_type, content_encoding=encoding, max_bytes=limit)


def _spans(payload: bytes) -> list:
    request = ExportTraceServiceRequest.FromString(payload)
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _otlp_json(**span_fields) -> dict:
    span = {
        "traceId": TRACE_HEX,
        "spanId": SPAN_HEX,
        "parentSpanId": PARENT_HEX,
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9007199254740993"}},
            {"key": "ok", "value": {"boolValue": True}},
        ],
        "links": [{"traceId": TRACE_HEX, "spanId": PARENT_HEX, "attributes": []}],
        "status": {"code": 2, "message": "boom"},
        **span_fields,
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeSpans": [{"scope": {"name": "lib", "version": "1.0"}, "spans": [span]}],
            }
        ]
    }


def test_valid_protobuf_is_kept_byte_for_byte_and_counted():
    body = make_request(12).SerializeToString()
    decoded = _decode(body)
    assert decoded.payload == body
    assert (decoded.accepted_spans, decoded.rejected_spans, decoded.rejection_message) == (12, 0, "")


def test_json_hex_ids_and_string_int64_decode_to_the_same_values_as_protobuf():
    decoded = _decode(json.dumps(_otlp_json()).encode(), "application/json")
    (span,) = _spans(decoded.payload)
    assert span.trace_id.hex() == TRACE_HEX
    assert span.span_id.hex() == SPAN_HEX
    assert span.parent_span_id.hex() == PARENT_HEX
    assert span.links[0].trace_id.hex() == TRACE_HEX and span.links[0].span_id.hex() == PARENT_HEX
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.attributes[0].value.int_value == 9007199254740993  # beyond float precision: parsed as a string
    assert span.kind == 3 and span.status.code == 2 and span.status.message == "boom"


def test_json_int64_as_number_and_enum_as_name_are_accepted():
    body = _otlp_json(startTimeUnixNano=1544712660000000000, kind="SPAN_KIND_SERVER")
    (span,) = _spans(_decode(json.dumps(body).encode(), "application/json; charset=utf-8").payload)
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.kind == 2


def test_json_unknown_fields_are_ignored():
    body = _otlp_json(someFutureField={"x": 1})
    body["resourceSpans"][0]["alsoNew"] = True
    (span,) = _spans(_decode(json.dumps(body).encode(), "application/json").payload)
    assert span.name == "chat gpt-4o"


def test_json_base64_id_raises_payload_error_naming_the_field():
    body = _otlp_json(traceId="W47/95gDgQPSabYzgT/GDA==")
    with pytest.raises(PayloadError, match=r"resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId .* hex"):
        _decode(json.dumps(body).encode(), "application/json")


def test_json_that_is_not_an_object_raises_payload_error():
    with pytest.raises(PayloadError, match="must be an object"):
        _decode(b"[1, 2]", "application/json")


def test_malformed_json_raises_payload_error_saying_json():
    with pytest.raises(PayloadError, match="not valid JSON"):
        _decode(b'{"resourceSpans": [', "application/json")


def test_json_with_wrong_field_type_raises_payload_error():
    body = _otlp_json(name=["not", "a", "string"])
    with pytest.raises(PayloadError, match="not a valid OTLP ExportTraceServiceRequest"):
        _decode(json.dumps(body).encode(), "application/json")


def test_malformed_protobuf_raises_payload_error_saying_protobuf():
    with pytest.raises(PayloadError, match="not a valid protobuf ExportTraceServiceRequest"):
        _decode(b"\x0a\xff\xff\xff\xff\x0f garbage")


def test_gzip_and_deflate_bodies_are_decompressed():
    body = make_request(3).SerializeToString()
    assert _decode(gzip.compress(body), encoding="gzip").payload == body
    assert _decode(zlib.compress(body), encoding="deflate").payload == body


def test_concatenated_gzip_members_are_all_read():
    body = make_request(3).SerializeToString()
    half = len(body) // 2
    assert _decode(gzip.compress(body[:half]) + gzip.compress(body[half:]), encoding="gzip").payload == body


def test_truncated_gzip_raises_payload_error_saying_truncated():
    compressed = gzip.compress(make_request(50).SerializeToString())
    with pytest.raises(PayloadError, match="truncated"):
        _decode(compressed[: len(compressed) // 2], encoding="gzip")


def test_gzip_that_is_not_gzip_raises_payload_error():
    with pytest.raises(PayloadError, match="cannot be decompressed"):
        _decode(b"definitely not gzip", encoding="gzip")


def test_body_over_the_limit_raises_payload_too_large_naming_the_limit():
    with pytest.raises(PayloadTooLargeError, match="limit of 100 bytes"):
        _decode(make_request(10).SerializeToString(), limit=100)


def test_small_gzip_that_inflates_over_the_limit_raises_payload_too_large():
    bomb = gzip.compress(b"\0" * (10 * LIMIT))
    assert len(bomb) < LIMIT
    with pytest.raises(PayloadTooLargeError, match="decompresses to more than"):
        _decode(bomb, encoding="gzip")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/grpc", "application/xml"])
def test_unsupported_content_type_raises_unsupported_media_type_listing_supported(content_type):
    with pytest.raises(UnsupportedMediaTypeError, match="application/x-protobuf or application/json"):
        media_kind(content_type)


def test_unsupported_content_encoding_raises_unsupported_media_type():
    with pytest.raises(UnsupportedMediaTypeError, match="Content-Encoding 'br'"):
        _decode(b"x", encoding="br")


def test_spans_with_invalid_ids_are_dropped_and_counted_while_the_rest_is_kept():
    request = make_request(5)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[1].trace_id = bytes(16)  # all zero
    spans[3].span_id = b"\x01\x02"  # wrong length
    decoded = _decode(request.SerializeToString())
    assert (decoded.accepted_spans, decoded.rejected_spans) == (3, 2)
    assert "2 span(s) rejected" in decoded.rejection_message and "step 1" in decoded.rejection_message
    assert [s.name for s in _spans(decoded.payload)] == ["step 0", "step 2", "step 4"]


def test_empty_request_is_accepted_with_no_spans():
    decoded = _decode(b"")
    assert decoded.accepted_spans == 0 and decoded.rejected_spans == 0


# -- fuzzing: the decoder raises PayloadError (or a subclass) and nothing else ------------------------------

_CONTENT_TYPES = st.sampled_from(["application/x-protobuf", "application/json", "application/protobuf"])
_ENCODINGS = st.sampled_from([None, "gzip", "deflate", "identity"])
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "links",
                         "attributes", "key", "value", "intValue", "name", "kind", "status", "code",
                         "startTimeUnixNano", "arrayValue", "values", "kvlistValue", "x"]),
        children, max_size=5,
    ),
    max_leaves=30,
)


def _never_crashes(body: bytes, content_type: str, encoding: str | None) -> None:
    try:
        decoded = decode_request(body, content_type=content_type, content_encoding=encoding, max_bytes=LIMIT)
    except PayloadError:
        return
    ExportTraceServiceRequest.FromString(decoded.payload)  # what is accepted is valid protobuf


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=2000), content_type=_CONTENT_TYPES, encoding=_ENCODINGS)
def test_fuzzed_bytes_only_ever_raise_payload_errors(body, content_type, encoding):
    _never_crashes(body, content_type, encoding)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_JSON_VALUES)
def test_fuzzed_json_documents_only_ever_raise_payload_errors(document):
    _never_crashes(json.dumps(document).encode(), "application/json", None)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_valid_protobuf_only_ever_raises_payload_errors(data):
    body = bytearray(make_request(4).SerializeToString())
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    _never_crashes(bytes(body[:cut]), "application/x-protobuf", None)
