"""Corrected tool calls are checked with the ``jsonschema`` library through a real ``tracemill serve``:
nested objects, enums, ``$ref``, formats and combinators, each error naming its place in the arguments;
``?check_only=1`` answers the same checks and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import PROTOBUF, ServerProcess, start_server

from .llm_trace import GOOD_ARGUMENTS, agent_run


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    server = start_server(tmp_path_factory.mktemp("tool-arguments"))
    try:
        request, ids = agent_run(3)
        assert server.post(request.SerializeToString(), PROTOBUF).status_code == 200
        server.wait_inserted(3)
        yield server, ids
    finally:
        server.stop()


def _correction(ids: dict[str, str], arguments: object) -> dict:
    return {"trace_id": ids["trace"], "span_id": ids["llm"], "name": "correction", "author": "ada",
            "kind": "correction", "value": {"output": None, "tool_calls": [{"name": "book_hotel",
                                                                           "arguments": arguments}]}}


def _stored(server: ServerProcess, ids: dict[str, str]) -> list[dict]:
    return server.client.get("/api/feedback", params={"trace_id": ids["trace"]}).json()["feedback"]


@pytest.mark.parametrize(("change", "place", "words"), [
    ({"guest": {"name": "Ada", "tier": "diamond"}}, "arguments.guest.tier",
     "'diamond' is not one of ['standard', 'gold', 'platinum']"),
    ({"guest": {"tier": "gold"}}, "arguments.guest", "'name' is a required property"),
    ({"stay": {"check_in": "March 1st", "nights": 2}}, "arguments.stay.check_in",  # through "$ref": "#/$defs/date"
     "'March 1st' does not match"),
    ({"stay": {"check_in": "2026-03-01", "nights": 31}}, "arguments.stay.nights",
     "31 is greater than the maximum of 30"),
    ({"contact": 7}, "arguments.contact", "7 is not valid under any of the given schemas"),
    ({"pets": True}, "arguments", "Additional properties are not allowed ('pets' was unexpected)"),
])
@pytest.mark.parametrize("check_only", [True, False])
def test_arguments_that_break_the_tool_schema_are_refused_naming_the_place(served, change, place, words,
                                                                           check_only):
    server, ids = served
    path = "/api/feedback?check_only=1" if check_only else "/api/feedback"
    response = server.client.post(path, json=_correction(ids, {**GOOD_ARGUMENTS, **change}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("item 0: tool call 0 (book_hotel): the arguments do not fit the tool's parameters: ")
    assert f"{place}: {words}" in error, error
    assert _stored(server, ids) == []


def test_check_only_answers_the_item_as_it_would_be_stored_and_stores_nothing(served):
    server, ids = served
    checked = server.client.post("/api/feedback?check_only=1", json=_correction(ids, GOOD_ARGUMENTS))
    assert checked.status_code == 200, checked.text
    assert checked.json()["feedback"][0]["value"]["tool_calls"][0]["arguments"] == GOOD_ARGUMENTS
    assert _stored(server, ids) == []
    written = server.client.post("/api/feedback", json=_correction(ids, GOOD_ARGUMENTS))
    assert written.status_code == 201, written.text
    assert [row["author"] for row in _stored(server, ids)] == ["ada"]
