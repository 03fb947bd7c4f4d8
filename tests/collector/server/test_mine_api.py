"""``tracemill mine`` and ``tracemill flags`` through a running server that owns the embedded store."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from typer.testing import CliRunner

from tests.servers import make_request, start_server
from tracemill.cli.app import app


def _two_traces_one_failing_tool(server: Any) -> tuple[Any, Any]:
    """Two traces of ten spans in ``server``; one tool call reports an error in its result."""
    request = make_request(20, seed=11)
    failing = request.resource_spans[0].scope_spans[0].spans[3]
    failing.name = "execute_tool search"
    for key, value in (("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", "search"),
                       ("gen_ai.tool.call.result", '{"error": "quota exceeded"}')):
        failing.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(20)
    return request, failing


def test_mine_and_flags_go_through_the_server(tmp_path, servers):
    server = start_server(tmp_path / "srv")
    servers.append(server)
    _, failing = _two_traces_one_failing_tool(server)

    runner = CliRunner()
    mined = runner.invoke(app, ["mine", "--server", server.url, "--json"])
    assert mined.exit_code == 0, mined.output
    result = json.loads(mined.stdout[mined.stdout.index("{"):])
    assert (result["traces"], result["spans"]) == (2, 20)
    tool_flags = [f for f in result["flags"] if f["detector"] == "tool_error"]
    assert [(f["trace_id"], f["span_id"], f["kind"]) for f in tool_flags] == [
        (failing.trace_id.hex(), failing.span_id.hex(), "tool_result_error")
    ]
    again = runner.invoke(app, ["mine", "--server", server.url, "--json"])
    assert json.loads(again.stdout[again.stdout.index("{"):])["traces"] == 0

    listed = runner.invoke(app, ["flags", "--server", server.url, "--kind", "tool_result_error", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [f["span_id"] for f in json.loads(listed.stdout)] == [failing.span_id.hex()]
    refused = server.client.post("/api/mine", json={"since": "whenever"})
    assert refused.status_code == 400 and "time 'whenever' is not understood" in refused.json()["error"]
    assert server.client.post("/api/mine", json={"everything": True}).status_code == 400


def test_flags_detectors_reads_the_latest_labelled_run_through_the_server(tmp_path, servers):
    server = start_server(tmp_path / "srv")
    servers.append(server)
    request, failing = _two_traces_one_failing_tool(server)
    runner = CliRunner()
    before = runner.invoke(app, ["flags", "--server", server.url, "--detectors", "--json"])
    assert before.exit_code == 0, before.output
    defaults = json.loads(before.stdout)
    assert defaults["run"] is None and server.client.get("/api/miner/latest").json() == {"run": None}
    assert {d["detector"]: d["evidence"] for d in defaults["detectors"]}["tool_error"] == "no labelled runs"

    traces = {span.trace_id.hex() for resource in request.resource_spans for scope in resource.scope_spans
              for span in scope.spans}
    for trace_id in sorted(traces):
        failed = trace_id == failing.trace_id.hex()
        outcome = {"trace_id": trace_id, "kind": "outcome", "name": "outcome", "author": "ci",
                   "label": "failure" if failed else "success", "score": 0.0 if failed else 1.0,
                   "value": {"success": not failed}}
        written = server.client.post("/api/feedback", json=outcome)
        assert written.status_code == 201, written.text
    mined = runner.invoke(app, ["mine", "--server", server.url, "--all", "--json"])
    assert mined.exit_code == 0, mined.output

    shown = runner.invoke(app, ["flags", "--server", server.url, "--detectors", "--json"])
    assert shown.exit_code == 0, shown.output
    latest = json.loads(shown.stdout)
    assert latest["run"] == server.client.get("/api/miner/latest").json()["run"]
    assert latest["detectors"] == latest["run"]["detectors"]
    tool_error = {d["detector"]: d for d in latest["detectors"]}["tool_error"]
    assert (tool_error["runs"], tool_error["failed"], tool_error["precision"], tool_error["base_rate"]) == (
        1, 1, 1.0, 0.5)
    table = runner.invoke(app, ["flags", "--server", server.url, "--detectors"])
    assert f"from mining run {latest['run']['run_id']}" in table.stdout and "tool_error" in table.stdout


def test_mine_body_over_the_limit_is_refused_with_413_and_mines_nothing(tmp_path, servers):
    from tracemill.collector.server.api_routes import MAX_API_BODY_BYTES

    server = start_server(tmp_path / "srv")
    servers.append(server)
    assert server.post(make_request(10, seed=3).SerializeToString()).status_code == 200
    server.wait_inserted(10)
    body = b"{" + b" " * MAX_API_BODY_BYTES + b"}"
    response = server.client.post("/api/mine", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert f"over the limit of {MAX_API_BODY_BYTES} bytes" in response.json()["error"]
    # Nothing was mined: the next run still finds the trace.
    mined = server.client.post("/api/mine", json={}).json()
    assert mined["traces"] == 1
