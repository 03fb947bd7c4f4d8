"""Trace summaries and trees: every agent of a multi-agent trace, and traces whose root was lost."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.servers import add_span
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.collector.server.api import get_trace, list_traces

NOW = time.time_ns()
TEAM, ORPHANED = "e5" * 16, "f6" * 16


def _add(scope, trace: str, span: int, parent: int | None, name: str, **attributes: str) -> None:
    add_span(scope, trace, span, parent, name, start_ns=NOW + span * 1_000_000, duration_ns=1_000_000,
             attributes={k.replace("__", "."): v for k, v in attributes.items()})


def _store_traces(store) -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="team")))
    scope = rs.scope_spans.add()
    _add(scope, TEAM, 1, None, "invoke_agent router", gen_ai__agent__name="router", tracemill__task__id="t-1")
    _add(scope, TEAM, 2, 1, "invoke_agent writer", gen_ai__agent__name="writer")
    _add(scope, TEAM, 3, 1, "invoke_agent critic", gen_ai__agent__name="critic")
    _add(scope, ORPHANED, 5, 4, "chat gpt-4o")  # its parent, the root, never arrived
    _add(scope, ORPHANED, 6, 5, "execute_tool search")
    store.insert_spans(request_to_rows(request))


def test_multi_agent_trace_lists_every_agent(store):
    _store_traces(store)
    team = next(t for t in list_traces(store) if t["trace_id"] == TEAM)
    assert team["agents"] == ["critic", "router", "writer"]
    assert team["agent"] == "critic, router, writer" and team["task"] == "t-1"
    assert team["root_missing"] is False


def test_trace_whose_root_was_lost_says_so_in_the_list_and_the_tree(store):
    _store_traces(store)
    orphaned = next(t for t in list_traces(store) if t["trace_id"] == ORPHANED)
    assert orphaned["root_missing"] is True
    tree = get_trace(store, ORPHANED)
    (root,) = tree["roots"]
    assert root["parent_missing"] is True and root["parent_span_id"] == (4).to_bytes(8, "big").hex()
    assert root["children"][0]["parent_missing"] is False
    assert tree["missing_parents"] == 1
