"""Trace-list filters at their edges: empty attribute values, list-valued attributes, escaped text."""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from tests.servers import add_span
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.collector.server.api import list_traces

NOW = time.time_ns()
STOPPED, LENGTH, EMPTY, ESCAPED = ("a1" * 16, "b2" * 16, "c3" * 16, "d4" * 16)


def _add(scope, trace: str, span: int, name: str, attributes: dict[str, AnyValue]) -> None:
    add_span(scope, trace, span, None, name, start_ns=NOW + span * 1_000_000, duration_ns=1_000_000,
             attributes=attributes)


def _strings(*values: str) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in values]))


@pytest.fixture
def traces(store):
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="filters")))
    scope = rs.scope_spans.add()
    _add(scope, STOPPED, 1, "chat a", {"gen_ai.response.finish_reasons": _strings("stop"),
                                       "gen_ai.request.seed": AnyValue(array_value=ArrayValue(
                                           values=[AnyValue(int_value=7)]))})
    _add(scope, LENGTH, 2, "chat b", {"gen_ai.response.finish_reasons": _strings("length", "tool_calls")})
    _add(scope, EMPTY, 3, "chat c", {"user.note": AnyValue(string_value="")})
    # What a client that writes JSON with ensure_ascii stores: the dash as \u2014, the accent as \u00e9.
    _add(scope, ESCAPED, 4, "chat d", {"gen_ai.input.messages": AnyValue(
        string_value='[{"role":"user","parts":[{"type":"text","content":"caf\\u00e9 \\u2014 open?"}]}]')})
    store.insert_spans(request_to_rows(request))


def _ids(store, **filters) -> set[str]:
    return {t["trace_id"] for t in list_traces(store, **filters)}


def test_empty_attribute_value_matches_only_traces_that_have_the_key_empty(store, traces):
    assert _ids(store, attributes={"user.note": ""}) == {EMPTY}
    assert _ids(store, attributes={"no.such.key": ""}) == set()


def test_list_valued_attribute_matches_any_of_its_elements(store, traces):
    assert _ids(store, attributes={"gen_ai.response.finish_reasons": "stop"}) == {STOPPED}
    assert _ids(store, attributes={"gen_ai.response.finish_reasons": "tool_calls"}) == {LENGTH}
    assert _ids(store, attributes={"gen_ai.request.seed": "7"}) == {STOPPED}
    assert _ids(store, attributes={"gen_ai.response.finish_reasons": '["stop"]'}) == {STOPPED}  # the stored text
    assert _ids(store, attributes={"gen_ai.response.finish_reasons": "sto"}) == set()


def test_search_finds_non_ascii_text_a_client_stored_json_escaped(store, traces):
    assert _ids(store, search="café — open") == {ESCAPED}
    assert _ids(store, search="CAFÉ") == {ESCAPED}
    assert _ids(store, search="café — closed") == set()
