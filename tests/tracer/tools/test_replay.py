"""Replaying tools: inside ``replaying(...)`` a ``@tracemill.tool`` call is answered from the recording, never run."""

from __future__ import annotations

import asyncio
import threading

import pytest

import tracemill
from tracemill.tracer.tools.replay import REPLAYED, Recording, Replay, ReplayedToolError, ToolNotRecorded, replaying

EXECUTED: list[str] = []


@tracemill.tool
def book_flight(flight_id: str, passenger: str) -> dict:
    EXECUTED.append(flight_id)
    return {"booking_reference": "LIVE"}


@tracemill.tool(name="search")
async def search_flights(origin: str, destination: str) -> list:
    EXECUTED.append(origin)
    return ["LIVE"]


@tracemill.tool
def login(user: str, api_key: str) -> str:
    EXECUTED.append(user)
    return "LIVE"


@pytest.fixture(autouse=True)
def _clear() -> None:
    EXECUTED.clear()


def test_replayed_call_returns_the_recording_and_never_runs_the_tool(spans):
    replay = Replay([Recording("book_flight", {"flight_id": "F1", "passenger": "Ada"}, {"booking_reference": "B1"})])
    with replaying(replay):
        assert book_flight("F1", passenger="Ada") == {"booking_reference": "B1"}
    assert EXECUTED == [] and replay.answered == 1 and replay.unused == [] and replay.unmatched == []
    span = spans.named("execute_tool book_flight")
    assert span.attributes[REPLAYED] is True
    assert span.attributes["gen_ai.tool.call.result"] == '{"booking_reference":"B1"}'


def test_unrecorded_call_raises_without_running_and_unused_recordings_are_drift(spans):
    replay = Replay([Recording("book_flight", {"flight_id": "F1", "passenger": "Ada"}, {"ok": True}),
                     Recording("search", {"origin": "Oslo", "destination": "Rome"}, [])])
    with replaying(replay), pytest.raises(ToolNotRecorded, match="the tool was not executed"):
        book_flight("F2", "Ada")
    assert EXECUTED == []
    assert replay.unmatched == [{"name": "book_flight", "arguments": {"flight_id": "F2", "passenger": "Ada"}}]
    assert [r["name"] for r in replay.unused] == ["book_flight", "search"]
    assert spans.named("execute_tool book_flight").status.status_code.name == "ERROR"


def test_async_tool_and_threads_started_inside_are_replayed(spans):
    replay = Replay([Recording("search", {"origin": "Oslo", "destination": "Rome"}, ["F1"]),
                     Recording("book_flight", {"flight_id": "F1", "passenger": "Ada"}, {"ok": 1})])
    answers: list = []
    with replaying(replay):
        answers.append(asyncio.run(search_flights("Oslo", "Rome")))
        worker = threading.Thread(target=lambda: answers.append(book_flight("F1", "Ada")))
        worker.start()
        worker.join()
    assert answers == [["F1"], {"ok": 1}] and EXECUTED == []


def test_recorded_builtin_error_is_raised_as_its_type_and_others_as_replayed_tool_error(spans):
    replay = Replay([Recording("book_flight", {"flight_id": "F1", "passenger": "Ada"}, None,
                               "ValueError: flight F1 is sold out", "ValueError"),
                     Recording("book_flight", {"flight_id": "F2", "passenger": "Ada"}, None, "Gone", "acme.Gone")])
    with replaying(replay):
        with pytest.raises(ValueError, match=r"^flight F1 is sold out$"):
            book_flight("F1", "Ada")
        with pytest.raises(ReplayedToolError, match="Gone"):
            book_flight("F2", "Ada")
    assert EXECUTED == []


def test_arguments_match_the_recorded_redacted_form(spans):
    replay = Replay([Recording("login", {"user": "ada", "api_key": "[REDACTED]"}, "recorded")])
    with replaying(replay):
        assert login("ada", api_key="sk-secret") == "recorded"
    assert EXECUTED == []


def test_without_a_replay_tools_run_and_the_replay_ends_with_its_block(spans):
    with replaying(Replay([])):
        pass
    assert book_flight("F1", "Ada") == {"booking_reference": "LIVE"} and EXECUTED == ["F1"]
    assert REPLAYED not in spans.named("execute_tool book_flight").attributes


def test_replay_answers_even_with_tracing_disabled():
    tracemill.init(disabled=True, env={})
    try:
        with replaying(Replay([Recording("book_flight", {"flight_id": "F1", "passenger": "Ada"}, "ok")])):
            assert book_flight("F1", "Ada") == "ok"
    finally:
        tracemill.shutdown()
    assert EXECUTED == []
