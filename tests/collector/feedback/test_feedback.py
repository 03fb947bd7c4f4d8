"""Feedback writes and reads, and flag reads, on a real chDB store and through a real server."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.servers import make_request, span_ids, start_server
from tracemill.collector.feedback.feedback import list_feedback, list_flags, record_feedback
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.errors import ConfigError, SpanNotFoundError, TraceNotFoundError


@pytest.fixture
def trace(store) -> tuple[str, list[str]]:
    """One stored trace: its id and its span ids."""
    request = make_request(3, seed=7)
    store.insert_spans(request_to_rows(request))
    trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    return trace_id, sorted(span_ids(request))


def _judgement(trace_id: str, span_id: str, **fields):
    """A label with a JSON value on a span. (Corrections need LLM spans: tests/trainer/test_feedback_checks.py.)"""
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "name": "tool_call",
        "author": "alice",
        "kind": "label",
        "label": "bad",
        "value": {"name": "refund", "arguments": {"order": "A-17"}},
        **fields,
    }


def test_feedback_is_stored_and_read_back_with_its_json_value(store, trace):
    trace_id, spans = trace
    stored = record_feedback(store, [_judgement(trace_id, spans[0], comment="wrong tool")])
    assert stored[0]["trace_id"] == trace_id and stored[0]["comment"] == "wrong tool"
    listed = list_feedback(store, trace_id=trace_id)
    assert len(listed) == 1
    assert listed[0]["value"] == {"name": "refund", "arguments": {"order": "A-17"}}
    assert listed[0]["span_id"] == spans[0] and listed[0]["kind"] == "label"
    assert listed[0]["created_at"] == stored[0]["created_at"]


def test_same_author_replaces_their_feedback_keeping_when_it_was_created(store, trace):
    trace_id, _ = trace
    first = record_feedback(store, [{"trace_id": trace_id, "name": "quality", "author": "alice", "kind": "score",
                                     "score": 0.2}])  # fmt: skip
    record_feedback(store, [{"trace_id": trace_id, "name": "quality", "author": "bob", "kind": "score", "score": 0.9}])
    again = record_feedback(
        store, [{"trace_id": trace_id, "name": "quality", "author": "alice", "kind": "score", "score": 0.4}]
    )
    current = {row["author"]: row for row in list_feedback(store, trace_id=trace_id)}
    assert {author: row["score"] for author, row in current.items()} == {"alice": 0.4, "bob": 0.9}
    assert current["alice"]["created_at"] == first[0]["created_at"]
    assert current["alice"]["updated_at"] == again[0]["updated_at"] > first[0]["updated_at"]
    assert current["alice"]["span_id"] == ""  # feedback on the whole trace


def test_deleted_feedback_is_gone_and_deleting_missing_feedback_is_refused(store, trace):
    trace_id, spans = trace
    record_feedback(store, [_judgement(trace_id, spans[1])])
    key = {"trace_id": trace_id, "span_id": spans[1], "name": "tool_call", "author": "alice", "deleted": True}
    record_feedback(store, [key])
    assert list_feedback(store, trace_id=trace_id) == []
    with pytest.raises(ConfigError, match=r"item 0: there is no feedback 'tool_call' by 'alice' on span"):
        record_feedback(store, [key])


def test_a_trace_prefix_is_resolved_to_the_full_id(store, trace):
    trace_id, _ = trace
    stored = record_feedback(store, [{"trace_id": trace_id[:10], "name": "outcome", "author": "ci", "kind": "outcome",
                                      "value": {"success": False}}])  # fmt: skip
    assert stored[0]["trace_id"] == trace_id
    assert list_feedback(store, kind="outcome")[0]["value"] == {"success": False}


def test_unknown_trace_or_span_is_refused_and_nothing_of_the_write_is_stored(store, trace):
    trace_id, spans = trace
    good = _judgement(trace_id, spans[0])
    with pytest.raises(SpanNotFoundError, match=rf"item 1: trace {trace_id} has no span 00000000000000ff"):
        record_feedback(store, [good, _judgement(trace_id, "00000000000000ff")])
    with pytest.raises(TraceNotFoundError, match=r"item 1: no trace with id f{32}"):
        record_feedback(store, [good, _judgement("f" * 32, spans[0])])
    with pytest.raises(ConfigError, match=r"item 1: item 0 already gives feedback 'tool_call' by 'alice' on span"):
        record_feedback(store, [good, {**good, "comment": "again"}])
    with pytest.raises(TraceNotFoundError, match=r"item 0: no trace id starts with 'abcabc'"):
        record_feedback(store, [_judgement("abcabc", spans[0])])
    assert store.query("SELECT count() FROM tracemill_feedback").result_rows[0][0] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "thumbs"}, r"item 0: kind 'thumbs' is not one of correction, score, label, preference, outcome"),
        ({"socre": 1}, r"item 0: unknown field\(s\) 'socre'; the fields are trace_id, span_id"),
        ({"author": " "}, r"item 0: author is required"),
        ({"span_id": "xyz"}, r"item 0: span_id 'xyz' is not a span id"),
        ({"kind": "score", "score": float("nan")}, r"item 0: score must be a finite number"),
        ({"kind": "score", "score": True}, r"item 0: score must be a finite number"),
        ({"kind": "score"}, r"item 0: score feedback needs a score"),
        ({"kind": "correction", "value": None}, r"item 0: correction feedback needs a value"),
        ({"label": ""}, r"item 0: label feedback needs a label"),
        ({"value": {"x": float("inf")}}, r"item 0: value cannot be written as JSON"),
        ({"deleted": "yes"}, r"item 0: deleted must be true or false"),
    ],
)
def test_malformed_items_are_refused_with_the_reason(store, trace, change, message):
    trace_id, spans = trace
    with pytest.raises(ConfigError, match=message):
        record_feedback(store, [{**_judgement(trace_id, spans[0]), **change}])
    assert store.query("SELECT count() FROM tracemill_feedback").result_rows[0][0] == 0


def test_flags_are_listed_latest_run_first_and_filtered(store, trace):
    trace_id, spans = trace
    names = ["RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Severity",
             "Confidence", "Evidence", "CreatedAt"]  # fmt: skip
    t0, t1 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    store.insert("tracemill_flags", [
        ["r1", "0.1", trace_id, spans[0], "tool_error", "1", "failure", "high", 0.6, "refund failed", t0],
        ["r1", "0.1", trace_id, spans[1], "retry", "1", "near_miss", "low", 0.3, "2 retries", t0],
    ], names)  # fmt: skip
    store.insert("tracemill_flags", [
        ["r2", "0.2", trace_id, spans[0], "tool_error", "2", "failure", "high", 0.8, "refund failed twice", t1],
    ], names)  # fmt: skip
    flags = list_flags(store, trace_id=trace_id)
    assert [(f["detector"], f["run_id"], f["confidence"]) for f in flags] == [
        ("tool_error", "r2", 0.8),
        ("retry", "r1", 0.3),
    ]
    assert flags[0]["created_at"] == "2026-01-02T00:00:00Z"
    assert [f["detector"] for f in list_flags(store, category="near_miss")] == ["retry"]
    with pytest.raises(ConfigError, match="limit must be between 1 and 1000"):
        list_flags(store, limit=0)


def test_feedback_and_flags_through_the_server(tmp_path, servers):
    server = start_server(tmp_path / "srv")
    servers.append(server)
    request = make_request(2, seed=3)
    assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(2)
    trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    span_id = sorted(span_ids(request))[0]

    created = server.client.post("/api/feedback", json=_judgement(trace_id, span_id))
    assert created.status_code == 201, created.text
    listed = server.client.get("/api/feedback", params={"trace_id": trace_id}).json()["feedback"]
    assert [(f["span_id"], f["value"]["name"]) for f in listed] == [(span_id, "refund")]

    batch = [_judgement(trace_id, span_id, author="bob"), _judgement(trace_id, "00000000000000ff")]
    unknown = server.client.post("/api/feedback", json=batch)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == f"item 1: trace {trace_id} has no span 00000000000000ff"

    broken = server.client.post(
        "/api/feedback", content=b'{"trace_id": "ab', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("the body is not JSON: Unterminated string")

    bad_kind = server.client.post("/api/feedback", json={**_judgement(trace_id, span_id), "kind": "thumbs"})
    assert bad_kind.status_code == 400 and "kind 'thumbs'" in bad_kind.json()["error"]
    assert server.client.get("/api/feedback", params={"limit": "x"}).status_code == 400

    stored = server.client.get("/api/feedback").json()["feedback"]
    assert [f["author"] for f in stored] == ["alice"]  # the refused writes stored nothing
    assert server.client.get("/api/flags").json() == {"flags": []}
    assert json.loads(server.client.get("/api/flags", params={"severity": "high"}).text) == {"flags": []}


def test_feedback_body_over_the_limit_is_refused_with_413(tmp_path, servers):
    from tracemill.collector.server.api_routes import MAX_API_BODY_BYTES

    server = start_server(tmp_path / "srv")
    servers.append(server)
    body = b"[" + b" " * MAX_API_BODY_BYTES + b"]"
    response = server.client.post("/api/feedback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert f"over the limit of {MAX_API_BODY_BYTES} bytes" in response.json()["error"]
    assert server.client.get("/api/feedback").json() == {"feedback": []}
