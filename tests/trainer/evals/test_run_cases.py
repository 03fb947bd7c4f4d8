"""Run cases against the team's agent (``--agent``), tools replayed from each run's recording (``--replay-tools``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

from conftest import World, cli


def _run(world: World, suite: str, url: str, live_log, *extra: str) -> dict:
    done = cli("run", suite, "--agent", "desk_agent:agent", "--store", world.dsn, "--json", *extra,
               env={"EVAL_MODEL_URL": url, "EVAL_LIVE_LOG": str(live_log)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_replayed_tools_never_run_live_and_drift_is_reported_per_case(world, models, tmp_path):
    built = json.loads(cli("build", "desk-runs", "--from", "outcomes", "--limit", "10", "--store", world.dsn,
                           "--json").stdout)
    assert built["cases"] == built["by_kind"]["run"] == 10
    live = tmp_path / "live.jsonl"
    replayed = _run(world, "desk-runs", models["fixed"], live, "--replay-tools")
    assert not live.exists(), live.read_text()  # not one tool call reached the real desk
    assert replayed["total"] == 10 and len(replayed["results"]) == 10
    details = [r["detail"] for r in replayed["results"]]
    assert all("drift" in d and "replayed" in d for d in details)
    assert sum(d["replayed"] for d in details) > 10
    clean = [r for r in replayed["results"] if not r["detail"]["drift"]["unmatched_calls"]
             and not r["detail"]["drift"]["unused_recordings"]]
    drifted = [r for r in replayed["results"] if r not in clean]
    assert clean and drifted  # the fixed model takes the recorded path on clean runs, another on mistaken ones
    assert all(r["passed"] for r in clean), [(r["trace_id"], r["detail"]) for r in clean if not r["passed"]]
    for result in drifted:
        unmatched = result["detail"]["drift"]["unmatched_calls"]
        assert all({"name", "arguments"} <= set(call) for call in unmatched)

    live_run = _run(world, "desk-runs", models["fixed"], live)
    assert live.exists() and len(live.read_text().splitlines()) >= 10  # without replay the tools do run
    assert all("drift" not in r["detail"] for r in live_run["results"])


def test_run_cases_are_traced_and_tagged_with_the_eval_run(world, models, tmp_path):
    cli("build", "desk-runs-traced", "--from", "flags", "--limit", "4", "--store", world.dsn)
    result = _run(world, "desk-runs-traced", models["fixed"], tmp_path / "live.jsonl", "--replay-tools",
                  "--scorer", "scorers:answered")
    assert result["total"] == 4
    # Flagged production runs only: the eval runs of the tests before this one were mined and flagged too.
    assert all(r["case_id"].removeprefix("r-") in world.tickets for r in result["results"])
    # Judged by the scorer, or failed by the agent's own exception (recorded with the case, the eval goes on).
    assert all(r["detail"].get("reason") == "scorer" or "error" in r["detail"] for r in result["results"])
    assert result["passed"] == sum(bool((r["output"] or {}).get("answer")) for r in result["results"])
    done = cli("list", "--store", world.dsn, "--json")
    runs = {r["run_id"]: r for r in json.loads(done.stdout)["runs"]}
    assert runs[result["run_id"]]["candidate"] == "desk_agent:agent"
    trace_id = next(r["trace_id"] for r in result["results"] if r["detail"]["replayed"] > 0)
    shown = json.loads(subprocess.run([sys.executable, "-m", "tracemill.cli", "show", trace_id, "--store",
                                        world.dsn, "--json"], capture_output=True, text=True, timeout=120).stdout)
    (root,) = shown["roots"]
    assert root["attributes"]["tracemill.eval.run_id"] == result["run_id"]
    names = set(_names(root))
    assert "invoke_agent travel_desk" in names and any(n.startswith("execute_tool") for n in names)


def _names(span: dict) -> Iterator[str]:
    yield span["name"]
    for child in span.get("children") or ():
        yield from _names(child)
