"""A real ``tracemill serve`` against spans that used to stop ingestion or lose a whole request.

- a span at 2**63 ns (or with an event there) is refused alone, with the reason, and the spans
  sent with it and after it land (it used to be acknowledged, then block every later insert);
- an attribute nested deeper than the protobuf decoder reads is cut, and the span says so (the
  whole request used to get 400, which exporters do not retry).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.servers import JSON_HEADERS, ServerProcess, make_request, span_ids, start_server
from tracemill.collector.ingest.nesting import CUT_ATTRIBUTE, CUT_MARKER


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = start_server(tmp_path_factory.mktemp("poison"))
    yield started
    started.stop()


def _stored(server: ServerProcess, requests: list, timeout_s: float = 30.0) -> dict[str, dict]:
    """Every stored span of the traces in ``requests`` (as the API shows them), by span id, once all
    the spans of ``requests`` are there."""
    ids = set().union(*(span_ids(r) for r in requests))
    trace_ids = {
        s.trace_id.hex() for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans
    }
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:
        found = {}
        for trace_id in trace_ids:
            response = server.client.get(f"/api/traces/{trace_id}")
            stack = list(response.json()["roots"]) if response.status_code == 200 else []
            while stack:
                node = stack.pop()
                stack.extend(node["children"])
                found[node["span_id"]] = node
        if ids <= set(found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"stored {sorted(found)} of {sorted(ids)}; status {server.status()}\n{server.log()}")


def _partial(response) -> tuple[int, str]:
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    return partial.rejected_spans, partial.error_message


@pytest.mark.parametrize("where", ["start", "event"])
def test_a_span_past_2262_is_refused_alone_and_the_spans_after_it_land(server, where):
    seed = 500 if where == "start" else 600
    poison = make_request(3, seed=seed)
    spans = poison.resource_spans[0].scope_spans[0].spans
    if where == "start":
        spans[1].start_time_unix_nano = spans[1].end_time_unix_nano = 2**63
    else:
        spans[1].events.add(name="late", time_unix_nano=2**63)
    response = server.post(poison.SerializeToString())
    assert response.status_code == 200
    rejected, message = _partial(response)
    assert rejected == 1
    assert "step 1" in message and str(2**63) in message and "2262-04-11" in message
    refused = spans[1].span_id.hex()
    del spans[1]  # what should be stored of the first request
    good = make_request(10, seed=seed + 1)
    assert server.post(good.SerializeToString()).status_code == 200
    stored = _stored(server, [poison, good])
    assert refused not in stored and len(stored) == 12
    status = server.status()
    assert status["writer"]["healthy"], status["writer"]
    assert status["spool"]["spans"] == 0 and status["receiver"]["rejected_spans"] >= 1


def _nested(depth: int) -> AnyValue:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValueList

    value = AnyValue(string_value="bottom")
    for level in range(depth):
        value = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=f"l{depth - level}", value=value)]))
    return value


def _deep_request(depth: int, *, seed: int) -> tuple[bytes, Any]:
    """A protobuf request whose first span holds a map nested ``depth`` deep, and the request without it.

    Built on the wire: the protobuf library refuses to build what its decoder cannot read.
    """
    from tracemill.collector.ingest.nesting import _field

    request = make_request(5, seed=seed)
    value = AnyValue(string_value="bottom").SerializeToString()
    for level in range(depth):
        value = _field(6, _field(1, _field(1, f"x{level}".encode()) + _field(2, value)))
    scope_spans = request.resource_spans[0].scope_spans[0]
    spans = [s.SerializeToString() for s in scope_spans.spans]
    spans[0] += _field(9, _field(1, b"deep") + _field(2, value))  # one more attribute: fields may come in any order
    scope = _field(1, scope_spans.scope.SerializeToString()) + b"".join(_field(2, s) for s in spans)
    resource = _field(1, request.resource_spans[0].resource.SerializeToString()) + _field(2, scope)
    return _field(1, resource), request


def test_a_protobuf_attribute_nested_past_the_decoder_limit_is_cut_and_the_request_stored(server):
    body, request = _deep_request(40, seed=700)
    response = server.post(body)
    assert response.status_code == 200, response.content
    rejected, warning = _partial(response)
    assert rejected == 0 and "nested deeper than the decoder reads were cut" in warning and CUT_ATTRIBUTE in warning
    stored = _stored(server, [request])
    deep_span = request.resource_spans[0].scope_spans[0].spans[0].span_id.hex()
    attributes = stored[deep_span]["attributes"]
    assert json.loads(attributes[CUT_ATTRIBUTE]) == ["deep"]
    assert CUT_MARKER in attributes["deep"]
    assert attributes["deep"].startswith('{"x39":{"x38":')  # what fits is kept
    assert attributes["i"] == "0"
    assert all(CUT_ATTRIBUTE not in stored[s]["attributes"] for s in span_ids(request) - {deep_span})


def test_a_json_attribute_nested_past_the_decoder_limit_is_cut_and_the_request_stored(server):
    value: dict = {"stringValue": "bottom"}
    for level in range(40):
        value = {"kvlistValue": {"values": [{"key": f"k{level}", "value": value}]}}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5" * 32, "spanId": "6" * 16, "name": "deep json", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000000000001000", "attributes": [{"key": "deep", "value": value}]},
        {"traceId": "5" * 32, "spanId": "7" * 16, "name": "plain", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000000000001000"},
    ]}]}]}
    response = server.post(json.dumps(document).encode(), JSON_HEADERS)
    assert response.status_code == 200, response.content
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    expected = ExportTraceServiceRequest()
    for span in spans:
        added = expected.resource_spans.add().scope_spans.add().spans.add()
        json_format.ParseDict({"name": span["name"]}, added)
        added.trace_id, added.span_id = bytes.fromhex(span["traceId"]), bytes.fromhex(span["spanId"])
    stored = _stored(server, [expected])
    attributes = stored["6" * 16]["attributes"]
    assert json.loads(attributes[CUT_ATTRIBUTE]) == ["deep"] and CUT_MARKER in attributes["deep"]
