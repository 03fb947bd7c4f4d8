"""Inputs an attacker or a careless client sends get a JSON 400 (413 for size) from a real ``tracemill serve``,
never a plain-text 500, and store nothing; the trace page renders a run with no LLM span and no flag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import JSON_HEADERS, PROTOBUF, ServerProcess, make_request, run_cli, start_server

from .llm_trace import GOOD_ARGUMENTS, agent_run

TOKEN = "bad-input-token"
HOSTILE_NAME = "a\x00b\x01\x1b[31m\u202e"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str], dict[str, str]]]:
    server = start_server(tmp_path_factory.mktemp("bad-input"), token=TOKEN)
    try:
        with_llm, ids = agent_run(1)
        without_llm, plain = agent_run(2, llm=False, root_name="nightly cleanup")
        hostile = make_request(2, seed=99, service="esc\x1b]0;owned\x07", prefix=HOSTILE_NAME)
        for request in (with_llm, without_llm, hostile):
            assert server.post(request.SerializeToString(), PROTOBUF).status_code == 200
        server.wait_inserted(7)
        yield server, ids, plain
    finally:
        server.stop()


def _correction(ids: dict[str, str], arguments: object) -> dict:
    return {"trace_id": ids["trace"], "span_id": ids["llm"], "name": "correction", "author": "mallory",
            "kind": "correction", "value": {"output": None, "tool_calls": [{"name": "book_hotel",
                                                                           "arguments": arguments}]}}


def _score(ids: dict[str, str], score: str) -> str:
    head = json.dumps({"trace_id": ids["trace"], "name": "quality", "author": "mallory", "kind": "score"})
    return head[:-1] + f', "score": {score}}}'


def _bodies(ids: dict[str, str]) -> list[tuple[str, str, int, str]]:
    """(path, body, status, words of the error) for every input the probe found answered with a 500."""
    deep = "[" * 1000 + "]" * 1000
    return [
        ("/api/feedback", _score(ids, "1" + "0" * 400), 400, "digits"),
        ("/api/feedback", deep, 400, "nested more than"),
        ("/ui/login", '{"token": ' + deep + "}", 400, "token"),
        ("/api/feedback", json.dumps(_correction(ids, "[" * 5000 + "]" * 5000)), 400, "nested more than"),
        ("/api/feedback", json.dumps(_correction(ids, '{"guest": NaN}')), 400, "NaN is not a JSON number"),
        ("/api/feedback", json.dumps({**_correction(ids, GOOD_ARGUMENTS), "comment": "\ud800"}), 400,
         "lone UTF-16 surrogate"),
        ("/api/mine", '{"since": 1e308}', 400, "outside 1970-01-01 .. 9999-12-31"),
        ("/api/feedback", _score(ids, "-5"), 400, "score must be between 0 and 1"),
        ("/api/feedback", _score(ids, "1e300"), 400, "score must be between 0 and 1"),
        ("/api/feedback", _score(ids, "1e400"), 400, "too large"),
        ("/api/feedback", "[" + ",".join([_score(ids, "0.5")] * 200_000) + "]", 413, "over the limit"),
    ]


def _feedback_rows(server: ServerProcess, trace_id: str) -> list[dict]:
    response = server.client.get("/api/feedback", params={"trace_id": trace_id, "limit": "1000"})
    assert response.status_code == 200, response.text
    return response.json()["feedback"]


def test_every_input_of_the_probe_gets_a_json_400_or_413_and_stores_nothing(served):
    server, ids, _ = served
    anonymous = httpx.Client(base_url=server.url, timeout=60)
    for path, body, status, words in _bodies(ids):
        client = anonymous if path == "/ui/login" else server.client
        response = client.post(path, content=body.encode("utf-8", "surrogatepass"), headers=JSON_HEADERS)
        assert response.status_code == status, (path, body[:80], response.text[:300])
        assert response.headers["content-type"] == "application/json", path
        assert words in response.json()["error"], (path, response.json())
    anonymous.close()
    assert _feedback_rows(server, ids["trace"]) == []
    assert server.alive()


def test_scores_at_the_ends_of_the_range_are_stored(served):
    server, ids, _ = served
    for score in ("0", "1", "0.25"):
        response = server.client.post("/api/feedback", content=_score(ids, score), headers=JSON_HEADERS)
        assert response.status_code == 201, response.text
    assert [row["score"] for row in _feedback_rows(server, ids["trace"])] == [0.25]
    tombstone = {"trace_id": ids["trace"], "name": "quality", "author": "mallory", "deleted": True}
    assert server.client.post("/api/feedback", json=tombstone).status_code == 201


def test_trace_page_renders_a_run_with_no_llm_span_and_no_flag(served):
    server, _, plain = served
    assert server.client.get(f"/api/traces/{plain['trace']}").status_code == 200
    page = server.client.get(f"/ui/traces/{plain['trace']}")
    assert page.status_code == 200, page.text[:500]
    assert "nightly cleanup" in page.text and "execute_tool book_hotel" in page.text


def _cli(server: ServerProcess, *args: str):
    return run_cli(*args, env={"TRACEMILL_SERVER": server.url, "TRACEMILL_TOKEN": TOKEN})


@pytest.mark.parametrize("where", ["existing file", "under a file", "read-only place"])
def test_export_to_a_place_it_cannot_write_prints_one_error_line(served, tmp_path: Path, where):
    server, _, _ = served
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    target = {"existing file": blocker, "under a file": blocker / "data",
              "read-only place": Path("/proc/tracemill-export")}[where]
    done = _cli(server, "export", "dpo", "-o", str(target))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error: cannot write the dataset to"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("command", ["traces", "show"])
def test_control_characters_in_span_names_are_printed_escaped(served, command):
    server, _, _ = served
    listed = _cli(server, "traces", "--json")
    trace_id = next(t["trace_id"] for t in json.loads(listed.stdout)["traces"] if HOSTILE_NAME in t["name"])
    done = _cli(server, *(["traces", "--search", "step"] if command == "traces" else ["show", trace_id]))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x00" not in done.stdout and "\x07" not in done.stdout
    assert "\u202e" not in done.stdout
    assert "a\\x00b\\x01\\x1b" in done.stdout and "\\u202e" in done.stdout
