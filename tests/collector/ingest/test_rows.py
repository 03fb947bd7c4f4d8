from __future__ import annotations

import math

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from tracemill.collector.ingest.rows import (
    SPAN_COLUMNS,
    any_value_to_string,
    empty_rows,
    format_double,
    request_to_rows,
    row_count,
    sdk_spans_to_request,
    sdk_spans_to_rows,
)


def _by_name(rows) -> dict[str, dict[str, object]]:
    """Column-oriented rows as {span name: {column: value}}."""
    return {
        rows[SPAN_COLUMNS.index("SpanName")][i]: {c: rows[j][i] for j, c in enumerate(SPAN_COLUMNS)}
        for i in range(row_count(rows))
    }


def test_span_columns_are_the_exporter_insert_columns_in_order():
    assert len(SPAN_COLUMNS) == 22
    assert SPAN_COLUMNS[:3] == ("Timestamp", "TraceId", "SpanId")
    assert SPAN_COLUMNS[-4:] == ("Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes")


def test_sdk_spans_become_rows_with_exporter_values(sdk_spans):
    rows = sdk_spans_to_rows(sdk_spans)
    assert all(len(column) == 2 for column in rows)
    spans = {s.name: s for s in sdk_spans}
    child, parent = _by_name(rows)["chat gpt-4o"], _by_name(rows)["invoke_agent planner"]
    sdk_child = spans["chat gpt-4o"]

    assert child["Timestamp"] == sdk_child.start_time
    assert child["Duration"] == sdk_child.end_time - sdk_child.start_time
    assert child["TraceId"] == f"{sdk_child.context.trace_id:032x}"
    assert child["SpanId"] == f"{sdk_child.context.span_id:016x}"
    assert child["ParentSpanId"] == parent["SpanId"]
    assert parent["ParentSpanId"] == ""
    assert (child["SpanKind"], parent["SpanKind"]) == ("Client", "Internal")
    assert (child["StatusCode"], child["StatusMessage"]) == ("Error", "rate limited")
    assert (parent["StatusCode"], parent["StatusMessage"]) == ("Unset", "")
    assert child["ServiceName"] == "agent-svc"
    assert child["ResourceAttributes"]["deployment.env"] == "test"
    assert (child["ScopeName"], child["ScopeVersion"]) == ("tracemill.tests", "1.2.3")
    assert child["TraceState"] == ""
    assert child["SpanAttributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.usage.input_tokens": "1234",
        "gen_ai.usage.output_tokens": "56",
        "gen_ai.request.temperature": "0.7",
        "flag.true": "true",
        "flag.false": "false",
        "big.float": "1e+21",
        "whole.float": "3",
        "tiny.float": "1.5e-7",
        "list.str": '["a","b\\"c"]',
        "list.int": "[1,-2,3]",
        "list.float": "[1.5,2]",
        "list.bool": "[true,false]",
        "text.unicode": "héllo ✓",
    }
    assert child["Events.Name"] == ["gen_ai.choice", "plain"]
    assert child["Events.Timestamp"] == [e.timestamp for e in sdk_child.events]
    assert child["Events.Attributes"] == [{"index": "0", "finish_reason": "stop", "score": "0.25"}, {}]
    assert child["Links.TraceId"] == [parent["TraceId"]]
    assert child["Links.SpanId"] == [parent["SpanId"]]
    assert child["Links.TraceState"] == [""]
    assert child["Links.Attributes"] == [{"link.reason": "caused_by", "link.n": "2"}]
    assert parent["Events.Name"] == [] and parent["Links.TraceId"] == []


def test_sdk_path_and_request_path_give_identical_rows(sdk_spans):
    request = ExportTraceServiceRequest.FromString(sdk_spans_to_request(sdk_spans).SerializeToString())
    assert request_to_rows(request) == sdk_spans_to_rows(sdk_spans)


def test_into_appends_to_existing_rows(sdk_spans):
    rows = empty_rows()
    same = sdk_spans_to_rows(sdk_spans, into=rows)
    sdk_spans_to_rows(sdk_spans, into=rows)
    assert same is rows
    assert row_count(rows) == 4


def _request(**span_fields) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.scope_spans.add().spans.add(**span_fields)
    return request


def test_all_zero_ids_become_empty_strings():
    rows = request_to_rows(_request(trace_id=bytes(16), span_id=bytes(8), parent_span_id=bytes(8)))
    assert [rows[i][0] for i in (1, 2, 3)] == ["", "", ""]


def test_missing_service_name_and_scope_give_empty_strings():
    rows = _by_name(request_to_rows(_request(name="s")))["s"]
    assert (rows["ServiceName"], rows["ScopeName"], rows["ScopeVersion"]) == ("", "", "")
    assert rows["ResourceAttributes"] == {}


def test_non_string_service_name_is_stringified_like_the_exporter():
    request = _request(name="s")
    request.resource_spans[0].resource.attributes.add(key="service.name", value=AnyValue(int_value=42))
    assert request_to_rows(request)[SPAN_COLUMNS.index("ServiceName")] == ["42"]


@pytest.mark.parametrize(
    ("kind", "name"),
    [(0, "Unspecified"), (1, "Internal"), (2, "Server"), (3, "Client"), (4, "Producer"), (5, "Consumer"), (9, "")],
)
def test_span_kind_is_named_like_pdata(kind, name):
    assert request_to_rows(_request(kind=kind))[SPAN_COLUMNS.index("SpanKind")] == [name]


@pytest.mark.parametrize(("code", "name"), [(0, "Unset"), (1, "Ok"), (2, "Error"), (7, "")])
def test_status_code_is_named_like_pdata(code, name):
    request = _request()
    request.resource_spans[0].scope_spans[0].spans[0].status.code = code
    assert request_to_rows(request)[SPAN_COLUMNS.index("StatusCode")] == [name]


def test_end_before_start_gives_zero_duration_not_wraparound():
    rows = request_to_rows(_request(start_time_unix_nano=2_000, end_time_unix_nano=1_000))
    assert rows[SPAN_COLUMNS.index("Duration")] == [0]


def test_timestamps_are_integer_nanoseconds():
    rows = request_to_rows(
        _request(start_time_unix_nano=1_700_000_000_123_456_789, end_time_unix_nano=1_700_000_001_000_000_000)
    )
    assert rows[0] == [1_700_000_000_123_456_789]
    assert rows[SPAN_COLUMNS.index("Duration")] == [876_543_211]


def _array(*values: AnyValue) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=list(values)))


def _kvlist(**values: AnyValue) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in values.items()]))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (AnyValue(string_value="x<y>&z"), "x<y>&z"),
        (AnyValue(int_value=-9_223_372_036_854_775_808), "-9223372036854775808"),
        (AnyValue(bool_value=False), "false"),
        (AnyValue(double_value=2.5), "2.5"),
        (AnyValue(bytes_value=b"\x00\xff\x10"), "AP8Q"),
        (AnyValue(), ""),
        (
            _array(AnyValue(string_value="a"), AnyValue(int_value=1), AnyValue(double_value=2.0), AnyValue()),
            '["a",1,2,null]',
        ),
        (_kvlist(b=AnyValue(int_value=1), a=AnyValue(string_value="<x>")), '{"a":"<x>","b":1}'),
        (_array(_kvlist(k=_array(AnyValue(bool_value=True))), AnyValue(bytes_value=b"hi")), '[{"k":[true]},"aGk="]'),
        (_array(AnyValue(string_value="line\nbreak\u2028tab\t\x01")), '["line\\nbreak\\u2028tab\\t\\u0001"]'),
        (_array(AnyValue(double_value=1e-7), AnyValue(double_value=1e16)), "[1e-7,10000000000000000]"),
        (_array(AnyValue(double_value=math.nan)), ""),
        (_kvlist(), "{}"),
    ],
)
def test_any_value_is_stringified_like_pdata_as_string(value, expected):
    assert any_value_to_string(value) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0.7, "0.7"),
        (3.0, "3"),
        (-0.0, "-0"),
        (0.0, "0"),
        (123456789.125, "123456789.125"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.2345678901234568e17, "123456789012345680"),
        (1e-6, "0.000001"),
        (1.5e-5, "0.000015"),
        (1.5e-7, "1.5e-7"),
        (-2.5e-10, "-2.5e-10"),
        (1e-100, "1e-100"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (math.nan, "json: unsupported value: NaN"),
        (math.inf, "json: unsupported value: +Inf"),
        (-math.inf, "json: unsupported value: -Inf"),
    ],
)
def test_format_double_matches_go_float64_as_string(number, expected):
    assert format_double(number) == expected
