"""``tracemill demo`` runs the loop on a fresh store; its report is checked against the store itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest


def _demo(tmp_path: Path, *args: str, timeout: int = 300) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tracemill.cli", "demo", "--dir", str(tmp_path / "demo"), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _query(dsn: str, sql: str) -> list[list[Any]]:
    """Read the demo's store from a fresh process (chDB allows one directory per process)."""
    script = textwrap.dedent(f"""
        import json, sys
        import tracemill
        with tracemill.Store.open({dsn!r}) as store:
            print(json.dumps(store.query({sql!r}).result_rows, default=str))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_demo_json_report_matches_the_store(tmp_path):
    report = _demo(tmp_path, "--runs", "24", "--skip-train", "--json")
    assert report["runs"] == 24 == len(report["trace_ids"]) == sum(report["behaviours"].values())
    assert report["store"] == str(tmp_path / "demo" / "store")
    assert report["review_ui"].startswith(f"tracemill serve --store 'chdb://{tmp_path / 'demo' / 'store'}'")

    (roots,) = _query(report["store_dsn"], "SELECT groupArray(TraceId) FROM otel_traces "
                                           "WHERE SpanName = 'invoke_workflow travel_desk'")
    assert sorted(roots[0]) == sorted(report["trace_ids"])
    chats, errors, linked_tools, tools = _query(report["store_dsn"], """
        SELECT countIf(GenAiOperation = 'chat' AND SpanAttributes['gen_ai.tool.definitions'] LIKE '%book_flight%'),
               countIf(GenAiOperation = 'execute_tool' AND StatusCode = 'Error'),
               countIf(GenAiOperation = 'execute_tool' AND length(Links.SpanId) = 1),
               countIf(GenAiOperation = 'execute_tool')
        FROM otel_traces""")[0]
    assert chats > 24 and tools > 0 and linked_tools == tools
    failed_args = report["behaviours"].get("wrong_args", 0) + report["behaviours"].get("bad_date_recovered", 0)
    assert errors == failed_args > 0
    (succeeded,) = _query(report["store_dsn"], "SELECT count() FROM otel_traces WHERE SpanName = 'execute_tool "
                                               "book_flight' AND SpanAttributes['gen_ai.tool.call.result'] "
                                               "LIKE '%booking_reference%'")[0]
    assert report["runs_succeeded"] <= succeeded

    assert {name: stage["status"] for name, stage in report["stages"].items()} == {
        "mine": "done", "review": "done", "export": "done", "train": "skipped", "eval": "done"}
    assert report["model_dir"] is None and report["preference_accuracy_after"] is None

    (flags, flagged), = _query(report["store_dsn"],
                               "SELECT count(), groupUniqArray(TraceId) FROM tracemill_flags FINAL")
    assert report["flags"] == flags > 0 and report["flagged_runs"] == len(flagged)
    assert sum(report["flags_by_kind"].values()) == flags
    failed = {r["trace_id"] for r in report["run_outcomes"] if not r["succeeded"]}
    assert failed and failed <= set(flagged)  # every run that failed was flagged

    corrections, outcomes, successes = _query(report["store_dsn"], """
        SELECT countIf(f.Kind = 'correction' AND t.GenAiOperation = 'chat'), countIf(f.Kind = 'outcome'),
               countIf(f.Kind = 'outcome' AND f.Label = 'success')
        FROM tracemill_feedback AS f FINAL
        LEFT JOIN (SELECT SpanId, any(GenAiOperation) AS GenAiOperation FROM otel_traces GROUP BY SpanId) AS t
            ON f.SpanId = t.SpanId""")[0]
    assert report["corrections"] == corrections > 0
    assert (outcomes, successes) == (24, report["runs_succeeded"])

    export_dir = Path(report["export_dir"])
    lines = [line for name in ("train.jsonl", "eval.jsonl") for line in (export_dir / name).read_text().splitlines()]
    assert report["pairs"] == len(lines) == corrections
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["kind"] == "dpo" and manifest["splits"]["train"] + manifest["splits"]["eval"] == report["pairs"]

    old, fixed = _scripted_gates(report)
    cases = report["evals"]["cases"]
    assert cases == corrections and (old["cases"], fixed["cases"]) == (cases, cases)
    p_value = 2 * 0.5 ** cases  # every case moved the same way: the exact McNemar p-value, two-sided
    assert old["p_value"] == fixed["p_value"] == pytest.approx(p_value)
    assert old["verdict"] == ("regression" if p_value < 0.05 else "no significant change")
    assert fixed["verdict"] == ("improvement" if p_value < 0.05 else "no significant change")
    (results, traced), = _query(report["store_dsn"], """
        SELECT count(), countIf(TraceId IN (SELECT TraceId FROM otel_traces WHERE GenAiOperation = 'chat'))
        FROM tracemill_eval_results FINAL""")
    assert results == traced == 2 * cases  # every attempt of both runs is a trace in the demo's store


def _scripted_gates(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gate on the scripted model's old behaviour (baseline: fixed) and on the fixed one (baseline: old):
    the old one fails every corrected decision again and the fixed one makes each of them."""
    old, fixed = report["evals"]["gates"][:2]
    cases = report["evals"]["cases"]
    assert (old["candidate_passed"], old["baseline_passed"]) == (0, cases)
    assert (fixed["candidate_passed"], fixed["baseline_passed"]) == (cases, 0)
    assert sorted(old["regressed"]) == sorted(fixed["improved"]) and len(old["regressed"]) == cases
    assert old["improved"] == fixed["regressed"] == []
    return old, fixed


def test_demo_trains_a_tiny_model_that_prefers_the_corrections_on_held_out_tasks(tmp_path):
    report = _demo(tmp_path, "--runs", "120", "--json", timeout=600)
    assert report["stages"]["train"]["status"] == "done", report["stages"]
    assert report["pairs"] > 0
    model_dir = Path(report["model_dir"])
    written = json.loads((model_dir / "report.json").read_text())
    before, after = written["before"], written["after"]
    assert before["preference_accuracy"] == report["preference_accuracy_before"]
    assert after["preference_accuracy"] == report["preference_accuracy_after"]
    # What the held-out pairs show of learning. Accuracy alone is a coarse signal on a dozen pairs: the untrained
    # tiny model (its tokenizer trained on this run's text) already ranks some pairs right by chance or by length.
    # The reward margin against the untrained model (0 before, by definition) and the widened log-prob gap between
    # chosen and rejected do not depend on that.
    assert after["preference_accuracy"] >= 0.75
    assert before["reward_margin"] == 0 < after["reward_margin"]
    assert after["chosen_logp"] - after["rejected_logp"] > before["chosen_logp"] - before["rejected_logp"]

    old, fixed = _scripted_gates(report)
    assert (old["verdict"], fixed["verdict"]) == ("regression", "improvement")
    assert old["p_value"] < 0.05 and fixed["p_value"] < 0.05
    (tiny,) = report["evals"]["gates"][2:]  # the trained model on the corrections of the held-out tasks
    assert tiny["baseline"] == "old behaviour" and tiny["baseline_passed"] == 0
    held_out = json.loads((Path(report["export_dir"]) / "manifest.json").read_text())["splits"]["eval"]
    assert 0 < tiny["cases"] <= held_out
    assert tiny["verdict"] == ("improvement" if tiny["p_value"] < 0.05 else "no significant change")


def test_demo_prints_the_report_for_people(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tracemill.cli", "demo", "--dir", str(tmp_path / "demo"), "--runs", "5", "--skip-train"],
        capture_output=True, text=True, timeout=300, env={"COLUMNS": "200", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "5 agent runs traced" in done.stdout
    assert "tracemill serve --store" in done.stdout
    assert str(tmp_path / "demo") in done.stdout


def test_demo_agent_talks_to_the_configured_real_model(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "integrations"))
    try:
        from openai_server import OpenAIServer
    finally:
        sys.path.pop(0)
    with OpenAIServer() as server:
        server.default = type(server.default)(text="I cannot book flights.")
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url,
               "TRACEMILL_DEMO_MODEL": "some-real-model"}
        done = subprocess.run([sys.executable, "-m", "tracemill.cli", "demo", "--dir", str(tmp_path / "demo"),
                               "--runs", "3", "--skip-train", "--json"],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["behaviours"] == {"real model": 3} and report["runs_succeeded"] == 0
        assert [r["model"] for r in server.requests] == ["some-real-model"] * 3
        assert all({t["function"]["name"] for t in r["tools"]} == {"search_flights", "book_flight", "get_weather"}
                   for r in server.requests)
        assert all(r["messages"][1]["content"].startswith("Ticket ") for r in server.requests)
    (models,) = _query(report["store_dsn"], "SELECT groupUniqArray(SpanAttributes['gen_ai.request.model']) "
                                            "FROM otel_traces WHERE GenAiOperation = 'chat'")[0]
    assert models == ["some-real-model"]
