"""Interop with the OpenTelemetry Collector's ClickHouse exporter and Grafana's ClickHouse plugin.

Rows go in with the exporter's own 22-column INSERT (exporter/clickhouseexporter/internal/
sqltemplates/traces_insert.sql) and come out through the trace-view query Grafana's ClickHouse
plugin generates (src/data/sqlGenerator.ts, trace-id mode with the trace timestamp table), with
the column names of this table. tracemill's own trace view reads the same rows.
"""

from __future__ import annotations

from tracemill.collector.server.api import get_trace, list_traces

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
CHILD = "eee19b7ec3c1b175"

EXPORTER_INSERT = """INSERT INTO "{database}"."otel_traces" (
    Timestamp,
    TraceId,
    SpanId,
    ParentSpanId,
    TraceState,
    SpanName,
    SpanKind,
    ServiceName,
    ResourceAttributes,
    ScopeName,
    ScopeVersion,
    SpanAttributes,
    Duration,
    StatusCode,
    StatusMessage,
    Events.Timestamp,
    Events.Name,
    Events.Attributes,
    Links.TraceId,
    Links.SpanId,
    Links.TraceState,
    Links.Attributes
) VALUES """

ROWS = [
    # the root, as the current exporter writes it
    f"""(toDateTime64('2025-03-01 10:00:00.000000000', 9), '{TRACE}', '{ROOT}', '', '',
        'invoke_agent planner', 'Server', 'agent-svc', map('service.name', 'agent-svc', 'host.name', 'h1'),
        'otel-go', '1.2.0', map('gen_ai.operation.name', 'invoke_agent', 'gen_ai.agent.name', 'planner'),
        2500000000, 'Ok', '', [], [], [], [], [], [], [])""",
    # a child with an event, a link and the older exporter's status spelling
    f"""(toDateTime64('2025-03-01 10:00:00.500000000', 9), '{TRACE}', '{CHILD}', '{ROOT}', '',
        'execute_tool search', 'SPAN_KIND_INTERNAL', 'agent-svc', map('service.name', 'agent-svc'),
        'otel-go', '1.2.0', map('gen_ai.tool.name', 'search', 'gen_ai.usage.input_tokens', '12'),
        1000000000, 'STATUS_CODE_ERROR', 'backend timed out',
        [toDateTime64('2025-03-01 10:00:01.000000000', 9)], ['exception'], [map('exception.type', 'Timeout')],
        ['{TRACE}'], ['{ROOT}'], [''], [map('link.kind', 'parent_call')])""",
]


def _grafana_trace_query(database: str, trace_id: str) -> str:
    # The plugin's generated SQL, with this schema's names for kind and scope.
    return (
        f"WITH '{trace_id}' as trace_id, "
        f'(SELECT min(Start) FROM "{database}"."otel_traces_trace_id_ts" WHERE TraceId = trace_id) as trace_start, '
        f'(SELECT max(End) + 1 FROM "{database}"."otel_traces_trace_id_ts" WHERE TraceId = trace_id) as trace_end '
        'SELECT "TraceId" as traceID, "SpanId" as spanID, "ParentSpanId" as parentSpanID, '
        '"ServiceName" as serviceName, "SpanName" as operationName, '
        'multiply(toUnixTimestamp64Nano("Timestamp"), 0.000001) as startTime, '
        'multiply("Duration", 0.000001) as duration, '
        "arrayMap(key -> map('key', key, 'value',\"SpanAttributes\"[key]), mapKeys(\"SpanAttributes\")) as tags, "
        "arrayMap(key -> map('key', key, 'value',\"ResourceAttributes\"[key]), mapKeys(\"ResourceAttributes\")) "
        "as serviceTags, "
        "if(\"StatusCode\" IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) as statusCode, "
        "arrayMap((name, timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)), "
        "arrayMap( key -> map('key', key, 'value', attributes[key]), mapKeys(attributes)))"
        "::Tuple(name String, timestamp String, fields Array(Map(String, String))), "
        '"Events".Name, "Events".Timestamp, "Events".Attributes) AS logs, '
        "arrayMap((traceID, spanID, attributes) -> tuple(traceID, spanID, arrayMap(key -> map('key', key, 'value', "
        "attributes[key]), mapKeys(attributes)))"
        "::Tuple(traceID String, spanID String, tags Array(Map(String, String))), "
        '"Links".TraceId, "Links".SpanId, "Links".Attributes) AS references, '
        '"SpanKind" as kind, "StatusMessage" as statusMessage, '
        '"ScopeName" as instrumentationLibraryName, "ScopeVersion" as instrumentationLibraryVersion, '
        '"TraceState" as traceState '
        f'FROM "{database}"."otel_traces" WHERE traceID = trace_id '
        'AND "Timestamp" >= trace_start AND "Timestamp" <= trace_end LIMIT 1000'
    )


def _insert_like_the_exporter(store) -> None:
    store.command(EXPORTER_INSERT.format(database=store.database) + ",\n".join(ROWS))


def test_exporter_insert_fills_the_trace_id_lookup_for_grafana(store):
    _insert_like_the_exporter(store)
    ((start, end),) = store.query(
        "SELECT toString(min(Start)), toString(max(End)) FROM otel_traces_trace_id_ts WHERE TraceId = {t:String}",
        {"t": TRACE},
    ).result_rows
    assert (start, end) == ("2025-03-01 10:00:00", "2025-03-01 10:00:00")


def test_grafana_trace_view_query_returns_the_exporter_rows(store):
    _insert_like_the_exporter(store)
    result = store.query(_grafana_trace_query(store.database, TRACE))
    rows = sorted((dict(zip(result.column_names, row, strict=True)) for row in result.result_rows),
                  key=lambda r: r["startTime"])
    assert [r["spanID"] for r in rows] == [ROOT, CHILD]
    root, child = rows
    assert (root["traceID"], root["parentSpanID"], root["serviceName"]) == (TRACE, "", "agent-svc")
    assert root["operationName"] == "invoke_agent planner"
    assert root["duration"] == 2500.0 and child["startTime"] - root["startTime"] == 500.0
    assert {"key": "gen_ai.agent.name", "value": "planner"} in root["tags"]
    assert {"key": "host.name", "value": "h1"} in root["serviceTags"]
    assert (root["statusCode"], child["statusCode"]) == (0, 2)
    assert child["statusMessage"] == "backend timed out"
    assert child["instrumentationLibraryName"] == "otel-go"
    (log,) = child["logs"]
    assert log["name"] == "exception" and log["fields"] == [{"key": "exception.type", "value": "Timeout"}]
    (reference,) = child["references"]
    assert (reference["traceID"], reference["spanID"]) == (TRACE, ROOT)
    assert reference["tags"] == [{"key": "link.kind", "value": "parent_call"}]


def test_tracemill_trace_view_reads_exporter_rows_with_either_status_spelling(store):
    _insert_like_the_exporter(store)
    trace = get_trace(store, TRACE)
    (root,) = trace["roots"]
    assert root["span_id"] == ROOT and [c["span_id"] for c in root["children"]] == [CHILD]
    child = root["children"][0]
    assert child["error"] is True and trace["error_count"] == 1
    assert child["events"][0]["attributes"] == {"exception.type": "Timeout"}
    assert child["links"] == [{"trace_id": TRACE, "span_id": ROOT, "trace_state": "",
                               "attributes": {"link.kind": "parent_call"}}]
    (listed,) = list_traces(store, errors_only=True)
    assert (listed["trace_id"], listed["name"], listed["errors"], listed["input_tokens"]) == (
        TRACE, "invoke_agent planner", 1, 12)
