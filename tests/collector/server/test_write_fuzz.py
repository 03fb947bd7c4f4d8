"""Fuzzing the two writes a client or a browser may send without help: ``POST /api/feedback`` and
``POST /ui/login``, against a real ``tracemill serve`` with an admin token and reviewers. Any body, JSON or
not, gets a 2xx or a 4xx with a JSON error, never a 500, and a refused body stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.servers import PROTOBUF, ServerProcess, make_request, start_server

ADMIN = "admin-token-of-the-fuzz-tests"
REVIEWER = "reviewer-token-of-the-fuzz-tests"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("write-fuzz")
    (directory / "reviewers.txt").write_text(f"fuzzer {REVIEWER}\n")
    server = start_server(directory, token=ADMIN, args=("--reviewers", str(directory / "reviewers.txt")))
    try:
        request = make_request(2, seed=77)
        assert server.post(request.SerializeToString(), PROTOBUF).status_code == 200
        server.wait_inserted(2)
        spans = request.resource_spans[0].scope_spans[0].spans
        yield server, {"trace": spans[0].trace_id.hex(), "span": spans[1].span_id.hex()}
    finally:
        server.stop()


_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
_TEXT = st.one_of(st.text(max_size=20), _SURROGATES, st.sampled_from(["", " ", "Alice", "fuzzer", "admin"]))
_NUMBERS = st.one_of(st.integers(min_value=-(10**400), max_value=10**400), st.floats(allow_nan=True),
                     st.sampled_from([1e308, -5, 0.5, 1]))
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=12)
_KINDS = st.sampled_from(["label", "score", "correction", "outcome", "preference", "nonsense", None])


def _items(ids: dict[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    """Feedback-shaped objects: real ids or not, every field either sensible or arbitrary."""
    field = {
        "trace_id": st.one_of(st.just(ids["trace"]), _TEXT),
        "span_id": st.one_of(st.just(ids["span"]), st.just(""), _TEXT),
        "name": st.one_of(st.just("fuzz"), _TEXT),
        "author": st.one_of(st.just("fuzzer"), _TEXT),
        "as_author": _JSON,
        "kind": st.one_of(_KINDS, _JSON),
        "label": st.one_of(st.just("good"), _JSON),
        "score": st.one_of(st.just(0.5), _NUMBERS, _JSON),
        "value": _JSON,
        "comment": _TEXT,
        "deleted": st.one_of(st.booleans(), _JSON),
    }
    return st.fixed_dictionaries({}, optional=field)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _bodies(ids: dict[str, str]) -> st.SearchStrategy[bytes]:
    def dump(value: Any) -> bytes:
        return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")

    return st.one_of(
        _items(ids).map(dump),
        st.lists(_items(ids), max_size=3).map(dump),
        _JSON.map(dump),
        st.binary(max_size=64),
        st.sampled_from([50, 500, 1500, 5000]).map(lambda d: _deep(d).encode()),
        st.sampled_from([b"", b"{", b"NaN", b'{"score": 1' + b"0" * 400 + b"}", b"\xff\xfe", b'"\\ud800"']),
    )


def _count(server: ServerProcess) -> int:
    response = server.client.get("/api/feedback", params={"limit": "1000"})
    assert response.status_code == 200, response.text
    return len(response.json()["feedback"])


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json", response.text[:200]
        assert isinstance(response.json()["error"], str)


def test_any_feedback_body_is_answered_2xx_or_4xx_json_and_a_refusal_stores_nothing(served):
    server, ids = served

    @FUZZ
    @given(body=_bodies(ids), token=st.sampled_from([ADMIN, REVIEWER]), check_only=st.booleans())
    def post(body: bytes, token: str, check_only: bool) -> None:
        before = _count(server)
        response = server.client.post("/api/feedback" + ("?check_only=1" if check_only else ""), content=body,
                                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        _check(response)
        event(f"status {response.status_code}")
        if response.status_code >= 400 or check_only:
            assert _count(server) == before

    post()
    assert server.alive()


def test_any_sign_in_body_is_answered_2xx_or_4xx_json(served):
    server, _ = served

    @FUZZ
    @given(body=st.one_of(_bodies({"trace": "", "span": ""}),
                          st.fixed_dictionaries({"token": _JSON, "next": _JSON}).map(
                              lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))))
    def post(body: bytes) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as anonymous:
            response = anonymous.post("/ui/login", content=body, headers={"Content-Type": "application/json"})
        _check(response)
        event(f"status {response.status_code}")
        assert "set-cookie" not in response.headers  # none of these bodies holds a token of this server

    post()
    assert server.alive()
