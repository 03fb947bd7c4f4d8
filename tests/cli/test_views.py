"""What the terminal shows: the trace list at any width, whole messages on request, lost roots named."""

from __future__ import annotations

import json
import time

import pytest
from rich.console import Console

from tracemill.cli.views import render_status, render_trace, render_traces
from tracemill.errors import SpanNotFoundError

NOW = time.time_ns()
LONG = "please plan a trip to Rome " * 6  # over the one-line cut, under the test console width


def _summary(**changes):
    base = {
        "trace_id": "ab" * 16, "name": "invoke_agent travel_desk_planner", "service": "travel-service",
        "agent": "booker, planner", "agents": ["booker", "planner"], "task": "trip-rome-42", "root_missing": False,
        "start": "", "start_ns": NOW, "duration_ms": 1234.5, "spans": 14, "errors": 1,
        "input_tokens": 1200, "output_tokens": 300,
    }  # fmt: skip
    return {**base, **changes}


def _printed(render, *args, width: int, **kwargs) -> str:
    console = Console(width=width, record=True, color_system=None)
    render(console, *args, **kwargs)
    return console.export_text()


def test_trace_list_at_80_columns_keeps_names_whole_and_fits():
    text = _printed(render_traces, [_summary(), _summary(trace_id="cd" * 16, name="chat gpt-4o")], width=80)
    assert "invoke_agent travel_desk_planner" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_trace_list_shows_task_and_every_agent_when_there_is_room():
    text = _printed(render_traces, [_summary()], width=200)
    header = text.splitlines()[0]
    assert "task" in header and "agent" in header and "service" in header
    assert "trip-rome-42" in text and "booker, planner" in text


def test_trace_list_says_when_a_trace_lost_its_root():
    text = _printed(render_traces, [_summary(root_missing=True, name="chat gpt-4o")], width=120)
    assert "chat gpt-4o (root missing)" in text


def _trace():
    message = json.dumps([{"role": "user", "parts": [{"type": "text", "content": LONG}]}])
    child = {
        "span_id": "00000000000000c2", "parent_span_id": "00000000000000c1", "parent_missing": False,
        "name": "chat gpt-4o", "kind": "Client", "service": "svc", "duration_ns": 5_000_000, "error": False,
        "status_code": "Unset", "status_message": "", "attributes": {"gen_ai.input.messages": message},
        "events": [], "links": [], "children": [],
    }  # fmt: skip
    root = {**child, "span_id": "00000000000000c1", "parent_span_id": "00000000000000ff", "parent_missing": True,
            "name": "invoke_agent travel", "attributes": {}, "children": [child]}
    return {"trace_id": "ab" * 16, "span_count": 2, "error_count": 0, "duration_ms": 5.0, "start_ns": NOW,
            "truncated": False, "roots": [root], "missing_parents": 1}


def test_show_cuts_long_values_unless_full_is_asked():
    cut = _printed(render_trace, _trace(), width=300)
    assert LONG.strip() not in cut and "…" in cut
    whole = _printed(render_trace, _trace(), width=300, full=True)
    assert LONG.strip() in whole and '"role": "user"' in whole  # indented JSON, one message readable


def test_show_one_span_whole_and_refuse_an_unknown_one():
    one = _printed(render_trace, _trace(), width=300, span_id="00000000000000C2")
    assert LONG.strip() in one and "invoke_agent travel" not in one
    with pytest.raises(SpanNotFoundError, match="has no span '0000000000000099'"):
        _printed(render_trace, _trace(), width=300, span_id="0000000000000099")


def test_show_says_a_span_whose_parent_was_lost_is_missing_its_parent():
    text = _printed(render_trace, _trace(), width=200)
    assert "parent span 00000000000000ff is missing" in text
    assert "1 span(s) name a parent that is not in the store" in text


def test_status_of_a_store_read_directly_names_the_server_running_for_another():
    status = {"server": None, "store": {"location": "/data/other", "database": "default", "available": True},
              "other_server": {"url": "http://127.0.0.1:4318", "pid": 42,
                               "store": {"location": "/data/main", "database": "default"}}}
    text = _printed(render_status, status, width=200, via="store /data/other")
    assert "http://127.0.0.1:4318 (pid 42) runs for another store: /data/main" in text
    assert "not running" not in text
