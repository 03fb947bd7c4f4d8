"""``tracemill.evals`` from Python on the reviewed store, and the local ``--model-dir`` candidate."""

from __future__ import annotations

import json

import pytest
from conftest import World, cli

import tracemill
import tracemill.evals as evals
from tracemill.trainer.evals.cases import decision_case_id
from tracemill.trainer.tiny import build_tiny_model


def test_python_api_builds_runs_and_gates_like_the_cli(world: World, models):
    with tracemill.Store.open(world.dsn) as store:
        built = evals.build("api-gate", source="all", store=store)
        assert built["by_kind"]["decision"] == len(world.corrected) and built["by_kind"]["run"] > 0
        old = evals.run("api-gate", model="travel-desk", base_url=models["old"], store=store)
        fixed = evals.run(f"api-gate@{built['version']}", model="travel-desk", base_url=models["fixed"], store=store,
                          concurrency=3)
        assert (old["passed"], fixed["passed"], fixed["total"]) == (0, len(world.corrected), len(world.corrected))
        worse = evals.compare(fixed["run_id"], old["run_id"][:10], store=store)
        better = evals.compare(old["run_id"], fixed["run_id"], store=store, alpha=0.01)
        listed = evals.list_runs(suite="api-gate", store=store)
        traced = store.query("SELECT count() FROM otel_traces WHERE SpanAttributes['tracemill.eval.run_id'] = "
                             "{r:String} AND ParentSpanId = ''", {"r": fixed["run_id"]}).result_rows[0][0]
    assert worse["verdict"] == "regression" and set(worse["regressed"]) == {
        decision_case_id(t, s) for t, s in world.corrected}
    assert better["verdict"] == "improvement" and better["p_value"] < 0.01
    assert {r["run_id"] for r in listed} == {old["run_id"], fixed["run_id"]}
    assert traced == len(world.corrected)  # every attempt is a trace of its own
    assert "<testcase" in evals.junit_xml(worse) and "regressed" in evals.render_html(worse)


def test_python_api_takes_callables_for_agent_and_scorer(world: World, models, monkeypatch, tmp_path):
    import desk_agent

    monkeypatch.setenv("EVAL_MODEL_URL", models["fixed"])
    monkeypatch.setenv("EVAL_LIVE_LOG", str(tmp_path / "live"))
    seen = []

    def scorer(case, result):
        seen.append(case.case_id)
        return 1.0 if result["answer"] else 0.0

    with tracemill.Store.open(world.dsn) as store:
        evals.build("api-agent", source="outcomes", limit=3, store=store)
        result = evals.run("api-agent", agent=desk_agent.agent, scorer=scorer, replay_tools=True, store=store)
    assert result["total"] == 3 and sorted(seen) == sorted(r["case_id"] for r in result["results"])
    assert not (tmp_path / "live").exists()


def test_missing_candidate_and_unknown_version_are_clear_errors(world: World):
    with tracemill.Store.open(world.dsn) as store:
        evals.build("api-errors", store=store)
        with pytest.raises(tracemill.ConfigError, match="give a candidate"):
            evals.run("api-errors", store=store)
        with pytest.raises(tracemill.NotFoundError, match=r"has no version 9 \(versions: 1\)"):
            evals.run("api-errors@9", model="m", store=store)
        with pytest.raises(tracemill.ConfigError, match="no run cases"):
            evals.run("api-errors", agent=lambda text: text, store=store)


def test_local_model_dir_runs_held_out_decision_cases(world: World, tmp_path):
    model_dir = build_tiny_model(tmp_path / "tiny", ["Ticket 1: book the cheapest flight", "search_flights"] * 4,
                                 vocab_size=300, seed=1)
    built = json.loads(cli("build", "api-tiny", "--limit", "3", "--store", world.dsn, "--json").stdout)
    done = cli("run", "api-tiny", "--model-dir", str(model_dir), "--store", world.dsn, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["total"] == built["cases"] == 3 and result["candidate"] == str(model_dir)
    for attempt in result["results"]:  # an untrained model answers something; it is scored, not crashed
        assert set(attempt["output"]) == {"output", "tool_calls"} and attempt["trace_id"]
        assert "reason" in attempt["detail"]
