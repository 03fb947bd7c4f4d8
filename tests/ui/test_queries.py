"""The queue's and the overview's queries on a real embedded store: order, filters, counts, neighbours."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tracemill.collector.feedback.feedback import list_flags, record_feedback
from tracemill.collector.store.store import Store
from tracemill.ui.queries import QueueFilters, neighbour, overview, queue, sort_key
from tracemill.ui.trace_data import trace_outline

_counter = itertools.count()
NOW = datetime.now(timezone.utc)
SPAN_COLUMNS = ["Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "ServiceName", "SpanAttributes",
                "Duration", "StatusCode"]
FLAG_COLUMNS = ["RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Kind",
                "Severity", "Confidence", "Evidence", "CreatedAt"]


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-queries") / "store"


@pytest.fixture
def store(chdb_dir: Path) -> Iterator[Store]:
    """A migrated store in a fresh database; closed afterwards (chDB: one directory at a time per process)."""
    database = f"uiq{next(_counter)}"
    opened = Store.open(f"chdb://{chdb_dir}", database=database)
    try:
        yield opened
    finally:
        opened.command(f"DROP DATABASE IF EXISTS `{database}`")
        opened.close()


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int, k: int) -> str:
    return f"{n:08x}{k:08x}"


def add_run(store: Store, n: int, *, agent: str, version: str, days_ago: int = 0) -> None:
    """A run: an agent span and one model call under it."""
    start = NOW - timedelta(days=days_ago, minutes=n)
    rows = [
        [start, tid(n), sid(n, 1), "", f"invoke_agent {agent}", "svc",
         {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent, "gen_ai.agent.version": version},
         5_000_000, "Unset"],
        [start + timedelta(milliseconds=1), tid(n), sid(n, 2), sid(n, 1), "chat m", "svc",
         {"gen_ai.operation.name": "chat", "gen_ai.output.messages":
          '[{"role": "assistant", "parts": [{"type": "text", "content": "answer ' + str(n) + '"}]}]'},
         3_000_000, "Unset"],
    ]
    store.insert("otel_traces", rows, SPAN_COLUMNS)


def flag(store: Store, n: int, detector: str, category: str, severity: str, confidence: float, minutes_ago: int = 0,
         *, span: int = 2, kind: str = ""):
    span_id = sid(n, span) if span else ""
    store.insert("tracemill_flags", [["r1", "0", tid(n), span_id, detector, "1", category, kind, severity, confidence,
                                      f"{detector} on run {n}", NOW - timedelta(minutes=minutes_ago)]], FLAG_COLUMNS)


def review(store: Store, n: int, detector: str, label: str = "confirmed", *, span: int = 2) -> None:
    record_feedback(store, [{"trace_id": tid(n), "span_id": sid(n, span) if span else "", "name": "flag_review",
                             "author": "t", "kind": "label", "label": label, "value": {"detector": detector}}])


@pytest.fixture
def flagged(store: Store) -> Store:
    add_run(store, 1, agent="planner", version="1", days_ago=2)
    add_run(store, 2, agent="planner", version="2", days_ago=1)
    add_run(store, 3, agent="booker", version="1")
    add_run(store, 4, agent="booker", version="1")
    flag(store, 1, "loop", "failure", "medium", 0.9, minutes_ago=30, kind="tool_result_error")
    flag(store, 2, "tool_error", "failure", "high", 0.5, minutes_ago=20)
    flag(store, 2, "excess_steps", "near_miss", "low", 0.8, minutes_ago=20, span=0)
    flag(store, 3, "excess_steps", "near_miss", "low", 0.3, minutes_ago=10)
    return store


def trace_ids(page: dict) -> list[str]:
    return [item["trace_id"] for item in page["items"]]


def test_queue_puts_the_most_severe_run_first_with_its_worst_flag(flagged):
    page = queue(flagged, QueueFilters())
    assert trace_ids(page) == [tid(2), tid(1), tid(3)]
    first = page["items"][0]
    assert (first["detector"], first["severity"], first["flags"], first["open"]) == ("tool_error", "high", 2, 2)
    assert (first["agent"], first["version"], first["spans"]) == ("planner", "2", 2)
    assert (page["matching"], page["left"]) == (3, 3)


def test_queue_newest_first_orders_by_the_latest_flag(flagged):
    assert trace_ids(queue(flagged, QueueFilters(sort="newest"))) == [tid(3), tid(2), tid(1)]


def test_queue_filters_by_kind_detector_agent_and_version(flagged):
    assert trace_ids(queue(flagged, QueueFilters(category="near_miss"))) == [tid(2), tid(3)]
    assert trace_ids(queue(flagged, QueueFilters(kind="tool_result_error"))) == [tid(1)]  # the Kind column
    assert trace_ids(queue(flagged, QueueFilters(kind="tool_error"))) == [tid(2)]  # no Kind: the detector
    assert trace_ids(queue(flagged, QueueFilters(detector="loop"))) == [tid(1)]
    assert trace_ids(queue(flagged, QueueFilters(agent="booker"))) == [tid(3)]
    assert trace_ids(queue(flagged, QueueFilters(agent="planner", version="1"))) == [tid(1)]
    assert trace_ids(queue(flagged, QueueFilters(version="9"))) == []


def test_a_run_leaves_the_queue_when_every_flag_on_it_is_reviewed(flagged):
    review(flagged, 2, "tool_error")
    page = queue(flagged, QueueFilters())
    assert trace_ids(page) == [tid(1), tid(2), tid(3)]  # one flag of run 2 is still open: low now
    review(flagged, 2, "excess_steps", "false_positive", span=0)
    page = queue(flagged, QueueFilters())
    assert trace_ids(page) == [tid(1), tid(3)] and page["left"] == 2
    assert trace_ids(queue(flagged, QueueFilters(reviewed="yes"))) == [tid(2)]
    assert len(queue(flagged, QueueFilters(reviewed=""))["items"]) == 3


def test_neighbour_steps_through_the_queue_even_after_the_current_run_left_it(flagged):
    filters = QueueFilters()
    assert neighbour(flagged, filters, tid(2), "next") == tid(1)
    assert neighbour(flagged, filters, tid(1), "prev") == tid(2)
    assert neighbour(flagged, filters, tid(3), "next") is None
    review(flagged, 1, "loop")
    assert neighbour(flagged, filters, tid(1), "next") == tid(3)


def test_neighbour_from_the_key_a_page_saw_follows_the_run_even_after_it_moved(flagged):
    filters = QueueFilters()
    flags = [{**f, "review": ""} for f in list_flags(flagged, trace_id=tid(2))]
    key = sort_key(filters, tid(2), flags)
    review(flagged, 2, "tool_error")  # run 2 drops to low: it now sorts after run 1
    assert neighbour(flagged, filters, tid(2), "next", key=key) == tid(1)
    assert neighbour(flagged, filters, tid(2), "next") == tid(3)


def test_a_review_settles_every_flag_on_its_span(flagged):
    flag(flagged, 4, "loop", "failure", "high", 0.9)
    flag(flagged, 4, "tool_error", "failure", "high", 0.8)
    assert queue(flagged, QueueFilters())["items"][0]["open"] == 2
    review(flagged, 4, "loop")
    assert tid(4) not in trace_ids(queue(flagged, QueueFilters()))


def test_overview_counts_flags_per_day_failure_rate_per_version_and_largest_groups(flagged):
    numbers = overview(flagged)
    per_day = {(row["day"], row["kind"]): row["flags"] for row in numbers["per_day"]}
    assert sum(per_day.values()) == 4
    assert per_day[((NOW - timedelta(days=2, minutes=1)).date().isoformat(), "tool_result_error")] == 1
    versions = {(v["agent"], v["version"]): (v["failed"], v["runs"]) for v in numbers["versions"]}
    assert versions == {("booker", "1"): (0, 2), ("planner", "1"): (1, 1), ("planner", "2"): (1, 1)}
    flag(flagged, 4, "loop", "failure", "low", 0.2, kind="tool_result_error")
    groups = overview(flagged)["groups"]  # failures only, grouped by their evidence with numbers masked
    assert groups == [{"template": "loop on run <n>", "kind": "tool_result_error", "flags": 2, "runs": 2},
                      {"template": "tool_error on run <n>", "kind": "tool_error", "flags": 1, "runs": 1}]


def test_trace_outline_summarizes_each_span_without_its_content(flagged):
    outline = trace_outline(flagged, tid(1))
    assert [s["name"] for s in outline["spans"]] == ["invoke_agent planner", "chat m"]
    assert outline["spans"][1]["summary"] == "answer 1"
    assert "attributes" not in outline["spans"][1]


def test_muted_flags_stay_out_of_the_queue_and_the_failure_counts(flagged):
    add_run(flagged, 5, agent="booker", version="1")
    flagged.insert("tracemill_flags", [["r1", "0", tid(5), sid(5, 2), "give_up", "1", "failure", "give_up", "high",
                                        0.1, "gives up [muted: fires on 13 labelled runs, 1 failed; base rate 0.58]",
                                        NOW, 1]], [*FLAG_COLUMNS, "Muted"])
    assert tid(5) not in trace_ids(queue(flagged, QueueFilters()))
    booker = next(v for v in overview(flagged)["versions"] if v["agent"] == "booker")
    assert booker["failed"] == 0
    assert any(f["muted"] for f in list_flags(flagged, trace_id=tid(5)))


def test_the_queue_page_context_carries_the_latest_miner_run(flagged):
    import json

    from tracemill.ui.pages import queue_context

    assert queue_context(flagged, {})["miner"] is None
    detectors = [{"detector": "give_up", "muted": True}, {"detector": "loop", "muted": False}]
    flagged.insert("tracemill_miner_runs", [["run1", NOW, "1", "logreg-2-x", "supervised", "task id (40 runs)", 40,
                                             0.9, 0.8, 0.5, 0.6, 0.7, 0.2, 0.4, json.dumps(detectors), "{}"]],
                   ["RunId", "CreatedAt", "MinerVersion", "ModelVersion", "Mode", "Grouping", "Labelled", "Auroc",
                    "Precision", "Recall", "RulesAuroc", "RulesPrecision", "RulesRecall", "Threshold", "Detectors",
                    "Scorer"])
    miner = queue_context(flagged, {})["miner"]
    assert (miner["auroc"], miner["rules_auroc"], miner["grouping"]) == (0.9, 0.6, "task id (40 runs)")
    assert miner["detectors"] == detectors
