"""Reviewer identity through a real ``tracemill serve --reviewers FILE``: the token, not the body, says who
writes; author names are normalised; the file is re-read when it changes; the CLI and ``tracemill.feedback``
send the reviewer's token; ``--resolve majority`` counts one vote per author."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tracemill.feedback as feedback
from tests.servers import PROTOBUF, ServerProcess, make_request, run_cli, start_server
from tracemill.collector.feedback.conflicts import current_feedback, parse_policy, settle
from tracemill.collector.feedback.feedback import record_feedback
from tracemill.collector.ingest.rows import request_to_rows
from tracemill.errors import ServerError

ADMIN = "admin-token-of-the-identity-tests"
ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, Path]]:
    directory = tmp_path_factory.mktemp("identity")
    reviewers = directory / "reviewers.txt"
    reviewers.write_text(f"# author token\nAlice {ALICE}\n  bob   {BOB}\n")
    server = start_server(directory, token=ADMIN, args=("--reviewers", str(reviewers)))
    try:
        request = make_request(2, seed=41)
        assert server.post(request.SerializeToString(), PROTOBUF).status_code == 200
        server.wait_inserted(2)
        yield server, request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex(), reviewers
    finally:
        server.stop()


def _as(server: ServerProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _label(trace_id: str, **fields: Any) -> dict[str, Any]:
    return {"trace_id": trace_id, "name": "thumbs", "kind": "label", "label": "good", **fields}


def _rows(server: ServerProcess, trace_id: str) -> dict[str, dict[str, Any]]:
    listed = server.client.get("/api/feedback", params={"trace_id": trace_id, "name": "thumbs"}).json()["feedback"]
    return {row["author"]: row for row in listed}


def test_a_reviewer_token_writes_as_that_reviewer_and_never_as_another(served):
    server, trace_id, _ = served
    with _as(server, ALICE) as alice, _as(server, BOB) as bob:
        assert alice.get("/api/identity").json() == {"role": "reviewer", "author": "alice"}
        assert alice.post("/api/feedback", json=_label(trace_id)).status_code == 201
        assert alice.post("/api/feedback", json=_label(trace_id, author=" ALICE ", label="bad")).status_code == 201
        forged = bob.post("/api/feedback", json=_label(trace_id, author="alice", label="good"))
        assert forged.status_code == 403 and forged.headers["content-type"] == "application/json"
        assert "you are signed in as 'bob', and may not write feedback as 'alice'" in forged.json()["error"]
        tombstone = bob.post("/api/feedback", json={"trace_id": trace_id, "name": "thumbs", "author": "alice",
                                                    "deleted": True})
        assert tombstone.status_code == 403
        assert bob.post("/api/feedback", json=_label(trace_id, as_author="alice")).status_code == 403
    rows = _rows(server, trace_id)
    assert set(rows) == {"alice"}  # ' ALICE ' replaced alice's row instead of adding an author
    assert (rows["alice"]["label"], rows["alice"]["written_by"]) == ("bad", "alice")


def test_the_admin_writes_for_an_author_only_with_as_author_which_is_recorded(served):
    server, trace_id, _ = served
    with _as(server, ADMIN) as admin:
        assert admin.get("/api/identity").json() == {"role": "admin", "author": "admin"}
        refused = admin.post("/api/feedback", json=_label(trace_id, name="admin-check", author="carol"))
        assert refused.status_code == 403 and '"as_author": \'carol\'' in refused.json()["error"]
        done = admin.post("/api/feedback", json=_label(trace_id, name="admin-check", as_author="Carol"))
        assert done.status_code == 201, done.text
        stored = done.json()["feedback"][0]
        assert (stored["author"], stored["written_by"]) == ("carol", "admin")
        own = admin.post("/api/feedback", json=_label(trace_id, name="admin-own")).json()["feedback"][0]
        assert (own["author"], own["written_by"]) == ("admin", "admin")
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer not-a-token"}) as stranger:
        assert stranger.post("/api/feedback", json=_label(trace_id, author="x")).status_code == 401


def test_the_reviewers_file_is_read_again_when_it_changes(served):
    server, _, reviewers = served
    rotated = "alice-rotated-token-0123456789"
    original = reviewers.read_text()
    try:
        reviewers.write_text(original.replace(ALICE, rotated))
        with _as(server, ALICE) as old, _as(server, rotated) as new:
            assert old.get("/api/identity").status_code == 401
            assert new.get("/api/identity").json() == {"role": "reviewer", "author": "alice"}
        reviewers.write_text("this line has no token\n")  # a broken edit keeps the reviewers read before
        with _as(server, rotated) as new:
            assert new.get("/api/identity").status_code == 200
        assert "keeping the reviewers read before" in server.log()
    finally:
        reviewers.write_text(original)
        time.sleep(0.01)


def test_cli_and_python_send_the_reviewers_token_and_write_as_that_reviewer(served, monkeypatch):
    server, trace_id, _ = served
    env = {"TRACEMILL_SERVER": server.url, "TRACEMILL_TOKEN": BOB, "USER": "somebody-else"}
    done = run_cli("feedback", "label", trace_id, "bad", "--name", "cli-check", env=env)
    assert done.returncode == 0, done.stderr
    assert "by bob" in done.stdout
    refused = run_cli("feedback", "label", trace_id, "bad", "--name", "cli-check", "--author", "alice", env=env)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "403" in refused.stderr and "signed in as 'bob'" in refused.stderr
    monkeypatch.setenv("TRACEMILL_TOKEN", ALICE)
    monkeypatch.setenv("USER", "somebody-else")
    monkeypatch.delenv("TRACEMILL_AUTHOR", raising=False)
    stored = feedback.score(trace_id, 0.75, name="py-check", endpoint=server.url)
    assert (stored["author"], stored["written_by"]) == ("alice", "alice")
    with pytest.raises(ServerError, match="signed in as 'alice'"):
        feedback.score(trace_id, 0.75, name="py-check", author="bob", endpoint=server.url)


def test_majority_counts_one_vote_per_author_whatever_the_spelling(store):
    request = make_request(1, seed=42)
    store.insert_spans(request_to_rows(request))
    trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    record_feedback(store, [_label(trace_id, author="bob", label="good"),
                            _label(trace_id, author="carol", label="good")])
    # Rows written before names were normalised: one client under two spellings of one name.
    now = time.time()
    from datetime import datetime, timezone
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    store.insert("tracemill_feedback", [
        [trace_id, "", "thumbs", author, "label", "", None, "bad", "", moment, moment, 0, ""]
        for author in ("Alice", "alice ")],
        ("TraceId", "SpanId", "Name", "Author", "Kind", "Value", "Score", "Label", "Comment", "CreatedAt",
         "UpdatedAt", "IsDeleted", "WrittenBy"))
    rows = current_feedback(store)
    assert sorted(row["author"] for row in rows) == ["alice", "alice", "bob", "carol"]
    kept, settled, dropped = settle(rows, parse_policy("majority"))
    assert (settled, dropped) == (1, 0) and [row["label"] for row in kept] == ["good"]
    assert record_feedback(store, [_label(trace_id, author="  Bob ", label="bad")])[0]["author"] == "bob"
