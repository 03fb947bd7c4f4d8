"""The store's read layer: typed records, bulk column reads, one filter builder, not-found errors."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.servers import add_span
from tracemill.collector.feedback.feedback import list_feedback, list_flags
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.collector.server.api import get_trace, list_traces, span_json
from tracemill.collector.store.bulk import read_spans, trace_aggregates
from tracemill.collector.store.query import attribute, iso, parse_attributes
from tracemill.collector.store.reads import trace_spans, trace_summaries
from tracemill.collector.store.records import SpanRecord, TraceSummary
from tracemill.collector.store.schema import quote_literal
from tracemill.errors import ConfigError, NotFoundError, SpanNotFoundError, TraceNotFoundError

TRACE, OTHER = "1a" * 16, "2b" * 16
NOW = 1_760_000_000_000_000_000
MESSAGES = '[{"role":"user","parts":[{"type":"text","content":"refund order A-17"}]}]'
TOOLS = '[{"type":"function","name":"refund","parameters":{"type":"object"}}]'


def _add(scope, trace: str, span: int, parent: int | None, name: str, *, error: bool = False, **attributes) -> None:
    add_span(scope, trace, span, parent, name, start_ns=NOW + span * 1_000_000, duration_ns=2_000_000, error=error,
             attributes={k.replace("__", "."): v for k, v in attributes.items()})


@pytest.fixture
def stored(store):
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="desk")))
    scope = rs.scope_spans.add()
    _add(scope, TRACE, 1, None, "invoke_agent desk", gen_ai__operation__name="invoke_agent",
         gen_ai__agent__name="desk", tracemill__task__id="task-9")
    _add(scope, TRACE, 2, 1, "chat gpt-4o", gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o",
         gen_ai__input__messages=MESSAGES, gen_ai__tool__definitions=TOOLS, gen_ai__usage__input_tokens=40,
         gen_ai__usage__output_tokens=5)
    _add(scope, TRACE, 3, 1, "execute_tool refund", error=True, gen_ai__operation__name="execute_tool",
         gen_ai__tool__name="refund", gen_ai__tool__call__id="call_1")
    _add(scope, OTHER, 9, None, "chat small", gen_ai__operation__name="chat")
    store.insert_spans(request_to_rows(request))
    return store


def test_not_found_errors_are_not_config_errors():
    assert not issubclass(TraceNotFoundError, ConfigError) and not issubclass(SpanNotFoundError, ConfigError)
    assert issubclass(TraceNotFoundError, NotFoundError) and issubclass(NotFoundError, LookupError)


def test_api_answers_404_for_not_found_and_400_for_bad_input():
    from tracemill.collector.server.api_routes import _answer

    def missing():
        raise TraceNotFoundError("no trace with id ff")

    def bad():
        raise ConfigError("limit must be between 1 and 1000 (got 0)")

    assert asyncio.run(_answer(missing)).status_code == 404
    assert asyncio.run(_answer(bad)).status_code == 400


def test_trace_summaries_are_typed_records_with_nanosecond_times(stored):
    summaries = trace_summaries(stored)
    assert all(isinstance(s, TraceSummary) for s in summaries)
    desk = next(s for s in summaries if s.trace_id == TRACE)
    assert (desk.start_ns, desk.duration_ns) == (NOW + 1_000_000, 4_000_000)
    assert (desk.agents, desk.task, desk.errors, desk.input_tokens) == (("desk",), "task-9", 1, 40)


def test_trace_spans_are_records_and_the_api_shapes_them_at_the_edge(stored):
    full_id, spans, truncated = trace_spans(stored, TRACE[:8])
    assert full_id == TRACE and not truncated
    assert all(isinstance(s, SpanRecord) for s in spans) and spans[2].error
    shaped = get_trace(stored, TRACE)
    assert shaped["roots"][0]["children"][0] == {**span_json(spans[1]), "parent_missing": False}
    assert shaped["start"] == iso(NOW + 1_000_000)


def test_read_spans_gives_columns_with_messages_and_tool_definitions(stored):
    llm = read_spans(stored, trace_ids=[TRACE, OTHER], operations=["chat"])
    assert llm.trace_id == [TRACE, OTHER]  # by trace, then start
    row = llm.row(llm.trace_id.index(TRACE))
    assert json.loads(row["input_messages"])[0]["role"] == "user"
    assert json.loads(row["tool_definitions"])[0]["name"] == "refund"
    assert (row["model"], row["operation"], row["error"]) == ("gpt-4o", "chat", False)
    by_id = read_spans(stored, span_ids=[(3).to_bytes(8, "big").hex()], with_attributes=True)
    assert len(by_id) == 1 and by_id.error == [True] and by_id.tool_call_id == ["call_1"]
    assert by_id.attributes[0]["gen_ai.tool.name"] == "refund"
    assert len(read_spans(stored, trace_ids=["ff" * 16])) == 0
    with pytest.raises(ValueError, match="needs trace_ids or span_ids"):
        read_spans(stored)


def test_trace_aggregates_count_decisions_tools_errors_and_tokens_per_trace(stored):
    agg = trace_aggregates(stored)
    assert agg.trace_id == [TRACE, OTHER]  # oldest first
    desk = agg.row(0)
    assert (desk["spans"], desk["llm_calls"], desk["tool_calls"], desk["tool_errors"]) == (3, 1, 1, 1)
    assert (desk["input_tokens"], desk["output_tokens"], desk["agents"], desk["task_id"]) == (40, 5, ["desk"], "task-9")
    assert desk["root_missing"] is False and desk["service"] == "desk"
    assert trace_aggregates(stored, trace_ids=[OTHER]).trace_id == [OTHER]


def test_every_listing_checks_its_page_with_the_same_rule(stored):
    for listing in (list_traces, list_feedback, list_flags):
        with pytest.raises(ConfigError, match=r"limit must be between 1 and 1000 \(got 0\)"):
            listing(stored, limit=0)
        with pytest.raises(ConfigError, match=r"offset must be 0 or more \(got -1\)"):
            listing(stored, offset=-1)


def test_attribute_filters_are_parsed_one_way():
    assert parse_attributes(["a=1", "b=", "c=x=y"]) == {"a": "1", "b": "", "c": "x=y"}
    with pytest.raises(ConfigError, match="--attr must look like KEY=VALUE"):
        parse_attributes(["novalue"])


def test_an_attribute_reads_what_the_map_subscript_reads(stored):
    keys = ["gen_ai.operation.name", "gen_ai.input.messages", "tracemill.task.id", "missing.key", "it's \\ quoted"]
    for key in keys:
        rows = stored.query(f"SELECT SpanId, SpanAttributes[{quote_literal(key)}], {attribute(key)} FROM otel_traces "
                            "ORDER BY SpanId").result_rows
        assert len(rows) == 4
        assert [r[1] for r in rows] == [r[2] for r in rows]
    assert [r[1] for r in stored.query(f"SELECT SpanId, {attribute('tracemill.task.id')} FROM otel_traces "
                                       "ORDER BY SpanId").result_rows] == ["task-9", "", "", ""]
    assert stored.query(f"SELECT {attribute('service.name', 'ResourceAttributes')} FROM otel_traces "
                        "LIMIT 1").result_rows == [("desk",)]
    # An odd key, and a map with a key twice: the first value, as the subscript reads it.
    odd = "CAST((['a', 'it\\'s \\\\ quoted', 'a'], ['1', '2', '3']), 'Map(LowCardinality(String), String)')"
    row = stored.query(f"SELECT m['a'], {attribute('a', 'm')}, {attribute(keys[-1], 'm')}, {attribute('b', 'm')} "
                       f"FROM (SELECT {odd} AS m)").result_rows[0]
    assert row == ("1", "1", "2", "")


def test_times_are_written_one_way_from_nanoseconds_or_datetimes():
    assert iso(1_738_324_800_000_000_001) == "2025-01-31T12:00:00.000000001Z"
    assert iso(datetime(2025, 1, 31, 12, tzinfo=timezone.utc)) == "2025-01-31T12:00:00Z"
    assert iso(datetime(2025, 1, 31, 12)) == "2025-01-31T12:00:00Z"  # naive: UTC
