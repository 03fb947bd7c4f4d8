"""Decisive-step marks: checked like other feedback, one per author per trace, conflicts between authors."""

from __future__ import annotations

import pytest

import tracemill.feedback as feedback
from tests.servers import make_request, run_cli, span_ids, start_server
from tracemill.collector.feedback.feedback import list_feedback, record_feedback
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.errors import ConfigError, SpanNotFoundError


@pytest.fixture
def trace(store) -> tuple[str, list[str]]:
    request = make_request(4, seed=11)
    store.insert_spans(request_to_rows(request))
    trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    return trace_id, sorted(span_ids(request))


def _marks(store, trace_id):
    return sorted((row["author"], row["span_id"]) for row in list_feedback(store, trace_id=trace_id, kind="decisive"))


def test_a_new_mark_of_an_author_replaces_the_earlier_one_and_other_authors_keep_theirs(store, trace):
    trace_id, spans = trace
    stored = feedback.decisive(trace_id, spans[0], author="ann", reason="wrong fact passed on", store=store)
    assert (stored["kind"], stored["name"], stored["comment"]) == ("decisive", "decisive", "wrong fact passed on")
    feedback.decisive(trace_id, spans[1], author="bob", store=store)
    feedback.decisive(trace_id, spans[2], author="ann", store=store)
    assert _marks(store, trace_id) == [("ann", spans[2]), ("bob", spans[1])]
    (conflict,) = feedback.conflicts(trace_id=trace_id, store=store)
    assert conflict["subject"] == {"kind": "decisive", "trace_id": trace_id, "span_id": ""}
    assert sorted(row["span_id"] for row in conflict["feedback"]) == sorted([spans[1], spans[2]])
    feedback.decisive(trace_id, spans[1], author="ann", store=store)  # now both agree: no conflict
    assert feedback.conflicts(trace_id=trace_id, store=store) == []
    feedback.delete(trace_id, name="decisive", span_id=spans[1], author="ann", store=store)
    assert _marks(store, trace_id) == [("bob", spans[1])]


def test_refused_marks_store_nothing(store, trace):
    trace_id, spans = trace
    with pytest.raises(SpanNotFoundError, match=f"item 0: trace {trace_id} has no span 00000000000000ff"):
        feedback.decisive(trace_id, "00000000000000ff", author="ann", store=store)
    with pytest.raises(ConfigError, match="names the span where the run went wrong"):
        record_feedback(store, [{"trace_id": trace_id, "name": "decisive", "author": "ann", "kind": "decisive"}])
    with pytest.raises(ConfigError, match="a decisive mark is named 'decisive'"):
        record_feedback(store, [{"trace_id": trace_id, "span_id": spans[0], "name": "step", "author": "ann",
                                 "kind": "decisive"}])
    two = [{"trace_id": trace_id, "span_id": span, "name": "decisive", "author": "ann", "kind": "decisive"}
           for span in spans[:2]]
    with pytest.raises(ConfigError, match="item 1: item 0 already marks the decisive step"):
        record_feedback(store, two)
    assert list_feedback(store, trace_id=trace_id) == []


def test_marks_through_the_api_and_the_cli(tmp_path, servers):
    server = start_server(tmp_path / "srv")
    servers.append(server)
    request = make_request(3, seed=5)
    assert server.post(request.SerializeToString()).status_code == 200
    server.wait_inserted(3)
    trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    spans = sorted(span_ids(request))
    item = {"trace_id": trace_id, "span_id": spans[0], "name": "decisive", "author": "ann", "kind": "decisive"}
    assert server.client.post("/api/feedback", json=item).status_code == 201
    missing = server.client.post("/api/feedback", json={**item, "author": "bob", "span_id": "00000000000000ff"})
    assert missing.status_code == 404 and "has no span 00000000000000ff" in missing.json()["error"]

    env = {"TRACEMILL_SERVER": server.url}
    done = run_cli("feedback", "decisive", trace_id, spans[1], "--reason", "answer from the wrong row",
                   "--author", "bob", env=env)
    assert done.returncode == 0, done.stderr
    assert f"stored decisive 'decisive' by bob on span {spans[1]}" in done.stdout
    bad = run_cli("feedback", "decisive", trace_id, "00000000000000ff", "--author", "bob", env=env)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "has no span" in bad.stderr
    stored = server.client.get("/api/feedback", params={"kind": "decisive"}).json()["feedback"]
    assert sorted((f["author"], f["span_id"], f["comment"]) for f in stored) == [
        ("ann", spans[0], ""), ("bob", spans[1], "answer from the wrong row")]
    conflicts = server.client.get("/api/feedback/conflicts", params={"trace_id": trace_id}).json()["conflicts"]
    assert [c["subject"]["kind"] for c in conflicts] == ["decisive"]
