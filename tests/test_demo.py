"""``tracemill demo`` traces an agent into a fresh embedded store and reports what was stored."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_stores_runs_and_reports_them_as_json(tmp_path):
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "tracemill.cli", "demo", "--store", f"chdb://{store}", "--runs", "3", "--json"],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["store"] == str(store)
    runs = report["runs"]
    assert [r["task"] for r in runs] == ["trip-oslo-rome", "trip-paris-atlantis", "trip-lima-cusco"]
    assert [(r["spans"], r["llm_calls"], r["tool_calls"], r["errors"]) for r in runs] == [
        (7, 3, 2, 0), (5, 2, 1, 1), (7, 3, 2, 0)]
    assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 for r in runs)

    trace = report["trace"]
    assert trace["trace_id"] == runs[1]["TraceId"]  # the failed run is the one shown
    by_name = {s["name"]: s for s in trace["spans"]}
    failed_tool = by_name["execute_tool search_flights"]
    assert failed_tool["status"] == "Error"
    assert failed_tool["tool_call_id"] == "call_trip-paris-atlantis_1"
    assert failed_tool["links"] == 1
    root = by_name["invoke_workflow travel_desk"]
    assert root["parent"] == ""
    assert by_name["invoke_agent travel_desk"]["parent"] == root["span_id"]


def test_demo_prints_tables_for_people(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tracemill.cli", "demo", "--store", f"chdb://{tmp_path / 'store'}", "--runs", "1"],
        capture_output=True, text=True, timeout=180, env={"COLUMNS": "160", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "Agent runs stored in" in done.stdout
    assert "trip-oslo-rome" in done.stdout
    assert "execute_tool get_weather" in done.stdout
