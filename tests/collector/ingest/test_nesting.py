"""Attribute values nested past the protobuf decoder's limit are cut, and only those: the rest is kept as sent."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracemill.collector.ingest.nesting import CUT_ATTRIBUTE, CUT_MARKER, _field, cut_deep_json, cut_deep_values
from tracemill.collector.ingest.otlp import decode_request
from tracemill.errors import PayloadError


def _nested(kinds: str) -> bytes:
    """An AnyValue (wire bytes) of maps ('k') and lists ('a'), outermost first, around a string."""
    value = AnyValue(string_value="bottom").SerializeToString()
    for kind in reversed(kinds):
        if kind == "k":
            value = _field(6, _field(1, _field(1, b"key") + _field(2, value)))
        else:
            value = _field(5, _field(1, value))
    return value


def _request(*, span: dict[str, bytes] = {}, event: dict[str, bytes] = {}, resource: dict[str, bytes] = {}) -> bytes:  # noqa: B006
    def kv(key: str, value: bytes) -> bytes:
        return _field(1, key.encode()) + _field(2, value)

    plain = AnyValue(string_value="v").SerializeToString()
    span_bytes = _field(1, b"\x01" * 16) + _field(2, b"\x02" * 8) + _field(5, b"the span")
    span_bytes += _field(9, kv("plain", plain))
    span_bytes += b"".join(_field(9, kv(k, v)) for k, v in span.items())
    if event:
        span_bytes += _field(11, _field(2, b"ev") + b"".join(_field(3, kv(k, v)) for k, v in event.items()))
    other = _field(1, b"\x01" * 16) + _field(2, b"\x03" * 8) + _field(5, b"other")
    resource_bytes = b"".join(_field(1, kv(k, v)) for k, v in resource.items())
    scope = _field(1, _field(1, b"tests")) + _field(2, span_bytes) + _field(2, other)
    return _field(1, _field(1, resource_bytes) + _field(2, scope))


def _parse(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def _depth(value: AnyValue) -> int:
    which = value.WhichOneof("value")
    if which == "kvlist_value":
        return 1 + max((_depth(kv.value) for kv in value.kvlist_value.values), default=0)
    if which == "array_value":
        return 1 + max((_depth(v) for v in value.array_value.values), default=0)
    return 0


@pytest.mark.parametrize(("kinds", "decodes"), [("k" * 31, True), ("k" * 32, False), ("a" * 47, True),
                                                ("a" * 48, False)])
def test_the_limit_is_where_the_decoder_puts_it(kinds, decodes):
    data = _request(span={"deep": _nested(kinds)})
    if decodes:
        _parse(data)
        assert cut_deep_values(data) == data  # nothing that decodes is changed
    else:
        with pytest.raises(DecodeError, match="MaxDepth"):
            _parse(data)


@pytest.mark.parametrize("kinds", ["k" * 32, "k" * 200, "a" * 48, "ka" * 40, "a" * 5 + "k" * 60])
def test_a_value_past_the_limit_is_cut_where_it_passes_it_and_the_span_says_so(kinds):
    request = _parse(cut_deep_values(_request(span={"deep": _nested(kinds)})))
    spans = request.resource_spans[0].scope_spans[0].spans
    attributes = {kv.key: kv.value for kv in spans[0].attributes}
    assert [v.string_value for v in attributes[CUT_ATTRIBUTE].array_value.values] == ["deep"]
    assert attributes["plain"].string_value == "v"
    deep = attributes["deep"]
    assert 28 <= _depth(deep) < len(kinds)  # as much as fits is kept
    assert CUT_MARKER in json_format.MessageToJson(deep, ensure_ascii=False)
    assert [kv.key for kv in spans[1].attributes] == []  # the other span is untouched


def test_cuts_in_events_and_the_resource_are_noted_on_the_spans_they_reach():
    data = _request(event={"e": _nested("k" * 40)}, resource={"r": _nested("k" * 40)})
    request = _parse(cut_deep_values(data))
    spans = request.resource_spans[0].scope_spans[0].spans
    notes = [
        [v.string_value for v in kv.value.array_value.values]
        for span in spans for kv in span.attributes if kv.key == CUT_ATTRIBUTE
    ]
    assert notes == [["resource.r", "events[0].e"], ["resource.r"]]


def test_the_receiver_stores_the_request_with_the_value_cut_and_says_so():
    decoded = decode_request(
        _request(span={"deep": _nested("k" * 40)}), content_type="application/x-protobuf", max_bytes=1 << 20
    )
    assert (decoded.accepted_spans, decoded.rejected_spans) == (2, 0)
    assert "were cut" in decoded.rejection_message
    _parse(decoded.payload)


def test_bytes_that_are_not_protobuf_still_get_a_payload_error():
    with pytest.raises(PayloadError):
        decode_request(b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 3, content_type="application/x-protobuf", max_bytes=100)


def test_json_values_are_cut_at_the_same_depth_as_protobuf():
    for levels, cut in ((31, False), (32, True)):
        value: dict = {"stringValue": "bottom"}
        for _ in range(levels):
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "s", "attributes": [
            {"key": "deep", "value": value}]}]}]}]}
        assert (cut_deep_json(document) > 0) is cut
        attributes = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
        assert (CUT_MARKER in json.dumps(attributes, ensure_ascii=False)) is cut
        assert ([a["key"] for a in attributes] == ["deep", CUT_ATTRIBUTE]) is cut
