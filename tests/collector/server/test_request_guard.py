"""Cross-site writes and DNS rebinding, refused by a real ``tracemill serve``; OTLP clients unaffected."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.servers import JSON_HEADERS, ServerProcess, make_request, span_ids, start_server
from tracemill.collector.server.request_guard import RequestGuardMiddleware, allowed_host_names

TOKEN = "guard-token-5f1c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A default server: loopback, no token."""
    srv = start_server(tmp_path_factory.mktemp("guard"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def stored_trace(server: ServerProcess) -> tuple[str, str]:
    request = make_request(2, seed=41)
    assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(2)
    trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    return trace_id, sorted(span_ids(request))[0]


def _outcome(trace_id: str, author: str) -> dict:
    return {"trace_id": trace_id, "kind": "outcome", "name": "outcome", "author": author, "label": "success",
            "score": 1.0, "value": {"success": True}}


def _feedback_authors(server: ServerProcess, trace_id: str) -> set[str]:
    listed = server.client.get("/api/feedback", params={"trace_id": trace_id})
    assert listed.status_code == 200, listed.text
    return {row["author"] for row in listed.json()["feedback"]}


def test_text_plain_write_from_another_site_is_refused_and_stores_nothing(server, stored_trace):
    trace_id, _ = stored_trace
    response = server.client.post(
        "/api/feedback", content=json.dumps(_outcome(trace_id, "mallory")),
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert response.json()["error"].startswith("cross-site write refused: a request from origin 'https://evil.example'")
    assert "mallory" not in _feedback_authors(server, trace_id)


def test_json_write_from_another_site_is_refused(server, stored_trace):
    trace_id, _ = stored_trace
    response = server.client.post("/api/feedback", json=_outcome(trace_id, "mallory2"),
                                  headers={"Origin": "http://localhost:9999"})
    assert response.status_code == 403
    for origin in ("null", "file://"):
        refused = server.client.post("/api/feedback", json=_outcome(trace_id, "mallory3"), headers={"Origin": origin})
        assert refused.status_code == 403, origin
    assert not {"mallory2", "mallory3"} & _feedback_authors(server, trace_id)


def test_write_the_browser_marks_cross_site_is_refused_without_an_origin(server, stored_trace):
    trace_id, _ = stored_trace
    response = server.client.post("/api/feedback", json=_outcome(trace_id, "mallory4"),
                                  headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert "mallory4" not in _feedback_authors(server, trace_id)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_api_write_that_is_not_json_is_refused_with_415(server, stored_trace, content_type):
    trace_id, _ = stored_trace
    response = server.client.post("/api/feedback", content=json.dumps(_outcome(trace_id, "eve")),
                                  headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error"] == (
        f"the API takes JSON: send 'Content-Type: application/json' (got {content_type!r})"
    )
    assert "eve" not in _feedback_authors(server, trace_id)


def test_same_origin_json_write_passes_as_the_review_ui_sends_it(server, stored_trace):
    trace_id, _ = stored_trace
    origin = server.url  # http://127.0.0.1:PORT, what a page served by this server sends
    response = server.client.post(
        "/api/feedback", json=_outcome(trace_id, "reviewer"),
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text
    port = server.url.rsplit(":", 1)[1]
    via_localhost = server.client.post(
        "/api/feedback", json=_outcome(trace_id, "reviewer2"),
        headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
    )
    assert via_localhost.status_code == 201, via_localhost.text
    assert {"reviewer", "reviewer2"} <= _feedback_authors(server, trace_id)


def test_rebound_host_name_cannot_read_traces(server, stored_trace):
    response = server.client.get("/api/traces", headers={"Host": f"evil.example:{server.url.rsplit(':', 1)[1]}"})
    assert response.status_code == 403
    assert response.json()["error"].startswith("this server does not answer to Host 'evil.example:")
    assert "TRACEMILL_ALLOWED_HOSTS" in response.json()["error"]
    assert stored_trace[0] not in response.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_loopback_names_are_answered(server, host):
    port = server.url.rsplit(":", 1)[1]
    response = server.client.get("/api/traces", headers={"Host": f"{host}:{port}"})
    assert response.status_code == 200, response.text


def test_otlp_exporters_without_origin_still_deliver_protobuf_and_json(server):
    protobuf = make_request(1, seed=42)
    assert server.post(protobuf.SerializeToString()).status_code == 200
    as_json = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319d", "spanId": "b7ad6b7169203332", "name": "json span",
        "startTimeUnixNano": "1700000000123456789", "endTimeUnixNano": "1700000001123456789",
    }]}]}]}
    assert server.post(json.dumps(as_json).encode(), headers=JSON_HEADERS).status_code == 200
    foreign = server.post(make_request(1, seed=44).SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf", "Origin": "https://evil.example"})
    assert foreign.status_code == 403


def test_configured_names_are_answered_and_bearer_scheme_is_case_insensitive(tmp_path, servers):
    server = start_server(tmp_path / "named", token=TOKEN,
                          env={"TRACEMILL_ALLOWED_HOSTS": "tracemill.internal, *.corp.example"})
    servers.append(server)
    port = server.url.rsplit(":", 1)[1]
    for host, expected in [("tracemill.internal", 200), (f"tracemill.internal:{port}", 200),
                           (f"box.corp.example:{port}", 200), (f"127.0.0.1:{port}", 200),
                           (f"evil.example:{port}", 403), (f"corp.example.evil:{port}", 403)]:
        assert server.client.get("/api/traces", headers={"Host": host}).status_code == expected, host
    for scheme in ("bearer", "BEARER", "Bearer", "bEaReR"):
        with httpx.Client(base_url=server.url, headers={"Authorization": f"{scheme} {TOKEN}"}) as client:
            assert client.get("/api/traces").status_code == 200, scheme
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Basic {TOKEN}"}) as client:
        assert client.get("/api/traces").status_code == 401


def test_wildcard_bind_answers_ip_literals_and_loopback_names_but_no_other_name():
    names, any_ip = allowed_host_names("0.0.0.0", ["tracemill.internal"])
    assert any_ip and {"localhost", "127.0.0.1", "::1", "tracemill.internal"} <= names
    names, any_ip = allowed_host_names("10.1.2.3")
    assert not any_ip and names == {"10.1.2.3"}
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))],
                    middleware=[Middleware(RequestGuardMiddleware, bind_host="0.0.0.0")])
    with TestClient(app) as client:
        assert client.get("/", headers={"Host": "192.168.1.9:4318"}).status_code == 200
        assert client.get("/", headers={"Host": "[fe80::1]:4318"}).status_code == 200
        assert client.get("/", headers={"Host": "rebind.example"}).status_code == 403

