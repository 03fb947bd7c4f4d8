"""Read queries shared by the CLI and the HTTP API: trace lists, search, one trace as a tree, status."""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.servers import add_span
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.collector.server.api import (
    TraceNotFoundError,
    get_trace,
    list_traces,
    parse_since,
    resolve_trace_id,
    store_status,
)
from tracemill.errors import ConfigError

NOW = time.time_ns()


def _span(scope, trace: str, span: int, parent: int | None, name: str, start_ms: int, **attributes):
    return add_span(scope, trace, span, parent, name, start_ns=NOW + start_ms * 1_000_000, duration_ns=10_000_000,
                    attributes={k.replace("__", "."): v for k, v in attributes.items()})


def _request(service: str) -> tuple[ExportTraceServiceRequest, object]:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    return request, rs.scope_spans.add()


FAILING, OLD, SUPPORT = "abcdef" + "01" * 13, "abcdef" + "02" * 13, "03" * 16


@pytest.fixture
def traces(store):
    """Three traces: two of 'billing' (one failing, one old), one of 'support' with a missing parent."""
    billing, scope = _request("billing")
    _span(scope, FAILING, 11, None, "invoke_agent billing", 0, gen_ai__agent__name="biller")
    _span(scope, FAILING, 12, 11, "chat gpt-4o", 5, gen_ai__usage__input_tokens=100, gen_ai__usage__output_tokens=7)
    failing = _span(scope, FAILING, 13, 11, "execute_tool refund", 20, gen_ai__tool__name="refund", order="A-17")
    failing.status.code = 2
    failing.status.message = "refund service down"
    _span(scope, OLD, 21, None, "invoke_agent billing", -3_600_000 * 3)  # three hours ago
    support, scope = _request("support")
    _span(scope, SUPPORT, 31, None, "invoke_agent support", 1000)
    _span(scope, SUPPORT, 32, 99, "orphan whose parent never arrived", 1001)
    for request in (billing, support):
        store.insert_spans(request_to_rows(request))
    return {"failing": FAILING, "old": OLD, "support": SUPPORT}


def test_traces_are_listed_newest_first_with_whole_trace_summaries(store, traces):
    listed = list_traces(store)
    assert [t["trace_id"] for t in listed] == [traces["support"], traces["failing"], traces["old"]]
    failing = listed[1]
    assert failing["name"] == "invoke_agent billing" and failing["service"] == "billing"
    assert (failing["spans"], failing["errors"]) == (3, 1)
    assert (failing["input_tokens"], failing["output_tokens"]) == (100, 7)
    assert failing["agent"] == "biller"
    assert failing["duration_ms"] == 30.0


def test_search_matches_attribute_values_and_still_counts_every_span_of_the_trace(store, traces):
    (found,) = list_traces(store, search="a-17")
    assert found["trace_id"] == traces["failing"] and found["spans"] == 3


def test_search_matches_span_names_status_messages_and_trace_id_prefixes(store, traces):
    assert [t["trace_id"] for t in list_traces(store, search="ORPHAN")] == [traces["support"]]
    assert [t["trace_id"] for t in list_traces(store, search="service down")] == [traces["failing"]]
    assert [t["trace_id"] for t in list_traces(store, search=traces["old"][:30])] == [traces["old"]]


def test_errors_service_attribute_and_time_filters_combine(store, traces):
    assert [t["trace_id"] for t in list_traces(store, errors_only=True)] == [traces["failing"]]
    assert {t["trace_id"] for t in list_traces(store, service="billing")} == {traces["failing"], traces["old"]}
    assert [t["trace_id"] for t in list_traces(store, attributes={"gen_ai.tool.name": "refund"})] == [
        traces["failing"]]
    assert {t["trace_id"] for t in list_traces(store, since="1h")} == {traces["failing"], traces["support"]}
    assert [t["trace_id"] for t in list_traces(store, until="2h")] == [traces["old"]]


def test_limit_and_offset_page_through_traces(store, traces):
    assert [t["trace_id"] for t in list_traces(store, limit=1, offset=1)] == [traces["failing"]]
    with pytest.raises(ConfigError, match="limit must be between 1 and 1000"):
        list_traces(store, limit=0)


def test_trace_is_a_tree_with_children_in_start_order(store, traces):
    trace = get_trace(store, traces["failing"])
    (root,) = trace["roots"]
    assert root["name"] == "invoke_agent billing"
    assert [c["name"] for c in root["children"]] == ["chat gpt-4o", "execute_tool refund"]
    refund = root["children"][1]
    assert refund["error"] and refund["status_message"] == "refund service down"
    assert refund["attributes"] == {"gen_ai.tool.name": "refund", "order": "A-17"}
    assert (trace["span_count"], trace["error_count"], trace["truncated"]) == (3, 1, False)


def test_span_whose_parent_is_missing_becomes_a_root(store, traces):
    roots = get_trace(store, traces["support"])["roots"]
    assert [r["name"] for r in roots] == ["invoke_agent support", "orphan whose parent never arrived"]


def test_trace_is_found_by_a_unique_prefix(store, traces):
    assert get_trace(store, traces["support"][:-6].upper())["trace_id"] == traces["support"]


def test_ambiguous_short_or_unknown_trace_ids_raise_with_the_reason(store, traces):
    with pytest.raises(TraceNotFoundError, match="ambiguous"):
        resolve_trace_id(store, "ABCDEF")
    with pytest.raises(ConfigError, match="at least 6 hex digits"):
        resolve_trace_id(store, "000")
    with pytest.raises(ConfigError, match="not a hex trace id"):
        resolve_trace_id(store, "xyz123")
    with pytest.raises(TraceNotFoundError, match="no trace with id"):
        get_trace(store, "f" * 32)


def test_store_status_counts_spans_traces_errors_and_services(store, traces):
    status = store_status(store)
    assert (status["spans"], status["traces"], status["error_spans"]) == (6, 3, 1)
    assert status["services"] == [{"name": "billing", "spans": 4}, {"name": "support", "spans": 2}]
    assert status["schema_version"] >= 4 and status["embedded"] is True


def test_status_of_an_empty_store_has_no_time_range(store):
    status = store_status(store)
    assert (status["spans"], status["first_span_at"], status["services"]) == (0, None, [])


@pytest.mark.parametrize(
    ("text", "seconds_ago"), [("30m", 1800), ("2h", 7200), ("1.5d", 129600), ("1w", 604800), ("90 s", 90)]
)
def test_durations_count_back_from_now(text, seconds_ago):
    assert abs(time.time() - seconds_ago - parse_since(text)) < 5


def test_iso_times_and_unix_seconds_are_accepted():
    assert parse_since("2025-01-31T12:00:00Z") == 1738324800.0
    assert parse_since("2025-01-31T12:00:00") == 1738324800.0  # no zone: UTC
    assert parse_since("1738324800") == 1738324800.0


def test_unreadable_time_raises_config_error_listing_the_forms():
    with pytest.raises(ConfigError, match="30m, 2h, 7d"):
        parse_since("yesterday")
