"""The OTLP receiver of a real ``tracemill serve`` process: clients, encodings, errors, auth, fuzzing."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.servers import (
    JSON_HEADERS,
    PROTOBUF,
    ServerProcess,
    clean_env,
    free_port,
    make_request,
    otlp_capture,
    run_cli,
    start_server,
)

TOKEN = "s3cret-token"
CLIENT = Path(__file__).with_name("otel_client.py")
MAX_REQUEST_BYTES = 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = start_server(
        tmp_path_factory.mktemp("receiver"), token=TOKEN,
        env={"TRACEMILL_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)},
    )
    yield started
    started.stop()


def _trace(server: ServerProcess, trace_id: str, *, spans: int, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        response = server.client.get(f"/api/traces/{trace_id}")
        if response.status_code == 200 and response.json()["span_count"] >= spans:
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"trace {trace_id} not stored: {response.status_code} {response.text}")
        time.sleep(0.1)


def _flatten(nodes: list[dict]) -> dict[str, dict]:
    out = {}
    for node in nodes:
        out[node["span_id"]] = node
        out.update(_flatten(node["children"]))
    return out


def _status(response: httpx.Response) -> Status:
    return Status.FromString(response.content)


def test_otel_sdk_exporter_in_another_process_delivers_every_field(server):
    result = subprocess.run(
        [sys.executable, str(CLIENT), "sdk", server.url, TOKEN],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )
    assert result.returncode == 0, result.stderr
    root, llm, tool = json.loads(result.stdout.strip().splitlines()[-1])
    trace = _trace(server, root["trace_id"], spans=3)
    spans = _flatten(trace["roots"])
    assert [r["span_id"] for r in trace["roots"]] == [root["span_id"]]
    assert {c["span_id"] for c in spans[root["span_id"]]["children"]} == {llm["span_id"], tool["span_id"]}

    stored_root = spans[root["span_id"]]
    assert stored_root["kind"] == "Server"
    assert stored_root["service"] == "sdk-client"
    assert stored_root["resource_attributes"]["deployment.environment"] == "t"
    assert stored_root["scope"] == {"name": "sdk.client.tests", "version": "2.0.1"}

    stored_llm = spans[llm["span_id"]]
    assert stored_llm["kind"] == "Client"
    assert stored_llm["attributes"] == {
        "gen_ai.usage.input_tokens": "1234",
        "gen_ai.request.temperature": "0.5",
        "cached": "true",
        "stop": '["\\n","END"]',
    }
    (event,) = stored_llm["events"]
    assert event["name"] == "gen_ai.choice"
    assert event["attributes"] == {"index": "0", "finish_reason": "tool_calls"}

    stored_tool = spans[tool["span_id"]]
    assert stored_tool["status_code"] == "Error" and stored_tool["error"] is True
    assert stored_tool["status_message"] == "search backend timed out"
    assert [e["name"] for e in stored_tool["events"]] == ["exception"]
    (link,) = stored_tool["links"]
    assert (link["trace_id"], link["span_id"]) == (root["trace_id"], llm["span_id"])
    assert link["attributes"] == {"link.kind": "caused_by"}
    assert trace["error_count"] == 1


def test_tracemill_init_pointed_at_the_server_delivers_its_trace(server):
    result = subprocess.run(
        [sys.executable, str(CLIENT), "tracemill", server.url, TOKEN],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (sent,) = json.loads(result.stdout.strip().splitlines()[-1])
    trace = _trace(server, sent["trace_id"], spans=2)
    (root,) = trace["roots"]
    assert root["name"] == "invoke_agent support" and root["service"] == "tracemill-client"
    assert [c["name"] for c in root["children"]] == ["execute_tool lookup"]
    result = root["children"][0]["attributes"]["gen_ai.tool.call.result"]
    assert json.loads(result) == {"order": 42, "status": "shipped"}


def test_json_request_with_hex_ids_and_string_int64_is_stored_as_sent(server):
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-client"}}]},
            "scopeSpans": [{"scope": {"name": "curl"}, "spans": [{
                "traceId": trace_id, "spanId": span_id, "name": "json span", "kind": 2,
                "startTimeUnixNano": "1700000000123456789", "endTimeUnixNano": "1700000001123456789",
                "attributes": [{"key": "big", "value": {"intValue": "9223372036854775807"}}],
                "status": {"code": 1},
            }]}],
        }]
    }
    response = server.post(json.dumps(body).encode(), JSON_HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    (span,) = _trace(server, trace_id, spans=1)["roots"]
    assert span["span_id"] == span_id
    assert span["start_ns"] == 1700000000123456789
    assert span["duration_ns"] == 1_000_000_000
    assert span["attributes"] == {"big": "9223372036854775807"}
    assert (span["kind"], span["status_code"], span["service"]) == ("Server", "Ok", "json-client")


def test_gzip_protobuf_request_is_accepted(server):
    response = server.post(
        gzip.compress(make_request(5, seed=71).SerializeToString()),
        {**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 0


def test_spans_with_invalid_ids_are_reported_as_partial_success(server):
    request = make_request(4, seed=72)
    request.resource_spans[0].scope_spans[0].spans[2].trace_id = b"short"
    response = server.post(request.SerializeToString())
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "invalid trace id" in partial.error_message and "step 2" in partial.error_message


def test_bad_requests_get_their_status_and_message_while_a_good_client_is_unaffected(server):
    before = server.health()["inserted_spans"]
    sent = 0
    failures: list[str] = []

    def good_client() -> None:
        nonlocal sent
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for seed in range(100, 130):
                response = client.post("/v1/traces", content=make_request(20, seed=seed).SerializeToString(),
                                       headers=PROTOBUF)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                sent += 20

    thread = threading.Thread(target=good_client)
    thread.start()
    valid = make_request(50, seed=73).SerializeToString()
    compressed = gzip.compress(valid)
    bad = [
        (b"\x0a\xff\xff\xff\xff\x0f not protobuf", PROTOBUF, 400, "not a valid protobuf"),
        (b'{"resourceSpans": [', JSON_HEADERS, 400, "not valid JSON"),
        (valid, {"Content-Type": "text/plain"}, 415, "Content-Type 'text/plain' is not supported"),
        (compressed[: len(compressed) // 2], {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "truncated"),
        (b"\0" * (MAX_REQUEST_BYTES + 1), PROTOBUF, 413, f"limit of {MAX_REQUEST_BYTES} bytes"),
        (gzip.compress(b"\0" * (MAX_REQUEST_BYTES * 4)), {**PROTOBUF, "Content-Encoding": "gzip"}, 413,
         "decompresses to more than"),
    ]
    for body, headers, status, message in bad:
        response = server.post(body, headers)
        assert response.status_code == status, (headers, response.text)
        text = _status(response).message if headers.get("Content-Type") == PROTOBUF["Content-Type"] else (
            response.json()["message"])
        assert message in text
    for headers, message in [({}, "requires a bearer token"), ({"Authorization": "Bearer wrong"}, "wrong")]:
        response = httpx.post(server.url + "/v1/traces", content=valid, headers={**PROTOBUF, **headers})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert message in _status(response).message
        assert httpx.get(server.url + "/api/status", headers=headers).status_code == 401
    thread.join(60)
    assert failures == []
    assert server.wait_inserted(before + sent)["inserted_spans"] >= before + sent
    assert server.alive()
    assert server.status()["receiver"]["refused_requests"] >= len(bad)


_CONTENT_TYPES = st.sampled_from(["application/x-protobuf", "application/json"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=3000), content_type=_CONTENT_TYPES, gzipped=st.booleans())
def test_fuzzed_bodies_never_take_the_server_down(server, body, content_type, gzipped):
    headers = {"Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    response = server.post(body, headers)
    assert response.status_code in (200, 400, 413), response.text
    assert server.client.get("/api/health").status_code == 200


def test_forward_sends_received_spans_to_another_otlp_endpoint(tmp_path, servers):
    with otlp_capture() as target:
        server = start_server(tmp_path, args=("--forward", target.url))
        servers.append(server)
        request = make_request(6, seed=74)
        assert server.post(request.SerializeToString()).status_code == 200
        assert target.wait() == [request.SerializeToString()]
        assert server.status()["forward"]["forwarded_requests"] == 1


def test_binding_beyond_loopback_without_a_token_refuses_to_start(tmp_path):
    result = run_cli("serve", "--store", f"chdb://{tmp_path}/store", "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 1
    assert "refusing to listen on '0.0.0.0' without a token" in result.stderr
    assert "--token" in result.stderr


def test_port_in_use_is_reported_with_the_fix(tmp_path, server):
    port = server.url.rsplit(":", 1)[1]
    result = run_cli("serve", "--store", f"chdb://{tmp_path}/store", "--port", port)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
