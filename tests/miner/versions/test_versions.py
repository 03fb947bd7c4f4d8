"""Configuration versions per agent: run counts, failure rates, what changed, and diffs."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tracemill
from tracemill.miner.versions.report import diff_versions, versions_report


def _corpus():
    spec = importlib.util.spec_from_file_location("versions_corpus", Path(__file__).with_name("versions_corpus.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


vc = _corpus()


@pytest.fixture
def two_prompts(store):
    """40 runs on prompt A failing 1 in 10, then 30 on prompt B failing 2 in 3."""
    rng = random.Random(7)
    vc.start_tracing(store)
    try:
        outcomes = [vc.one_run(rng, i, system=vc.PROMPT_A, tools=[vc.LOOKUP, vc.HAND_OFF], model="gpt-4o",
                               fail_rate=0.0 if i % 10 else 1.0) for i in range(40)]
        outcomes += [vc.one_run(rng, i, system=vc.PROMPT_B, tools=[vc.LOOKUP, vc.HAND_OFF], model="gpt-4o",
                                fail_rate=1.0 if i % 3 else 0.0) for i in range(30)]
        vc.record_outcomes(store, outcomes)
    finally:
        tracemill.shutdown()
    return outcomes


def test_two_system_prompts_give_two_versions_with_runs_and_failure_rates(store, two_prompts):
    report = versions_report(store, agent="support-agent")["versions"]
    assert [(v["runs"], v["failed"]) for v in report] == [(40, 4), (30, 20)]
    assert report[0]["failure_rate"] == 0.1 and report[1]["failure_rate"] == round(20 / 30, 4)
    assert report[1]["previous"] == report[0]["version"]
    assert report[1]["changes"] == ["system prompt changed"]
    assert report[1]["significant_shift"] and report[0]["first_seen"] <= report[1]["first_seen"]


def test_diff_names_the_changed_prompt_lines(store, two_prompts):
    old, new = (v["version"] for v in versions_report(store)["versions"])
    diff = diff_versions(store, old[:8], new)
    assert diff["kind"] == "run" and diff["changes"] == ["system prompt changed"]
    (decision,) = diff["diffs"]
    assert "-Be brief." in decision["system"]["diff"] and "+Offer a refund first." in decision["system"]["diff"]
    again = diff_versions(store, decision["from"], decision["to"])
    assert again["kind"] == "decision" and again["tools"] == {"added": [], "removed": [], "changed": []}


def test_tool_schema_change_and_model_change_each_give_a_new_version(store):
    rng = random.Random(3)
    stricter = {**vc.LOOKUP, "parameters": {**vc.LOOKUP["parameters"], "properties": {
        "order_id": {"type": "string", "pattern": "^A[0-9]{4}$"}}}}
    vc.start_tracing(store)
    try:
        outcomes = [vc.one_run(rng, i, system=vc.PROMPT_A, tools=[vc.LOOKUP], model="gpt-4o", fail_rate=0)
                    for i in range(5)]
        outcomes += [vc.one_run(rng, i, system=vc.PROMPT_A, tools=[stricter], model="gpt-4o", fail_rate=0)
                     for i in range(5)]
        outcomes += [vc.one_run(rng, i, system=vc.PROMPT_A, tools=[stricter], model="gpt-4o-mini", fail_rate=0)
                     for i in range(5)]
        vc.record_outcomes(store, outcomes)
    finally:
        tracemill.shutdown()
    report = versions_report(store)["versions"]
    assert [v["runs"] for v in report] == [5, 5, 5]
    assert report[1]["changes"] == ["tool lookup_order changed"]
    assert report[2]["changes"] == ["model gpt-4o → gpt-4o-mini"]
    assert report[2]["models"] == ["gpt-4o-mini"]


def test_cli_versions_json_and_diff(store, two_prompts, monkeypatch):
    from tracemill.cli.app import app

    dsn = f"chdb://{store.location}"
    monkeypatch.setenv("TRACEMILL_SERVER", "http://127.0.0.1:9")  # nothing answers: the command opens the store
    store_dsn = f"{dsn}?database={store.database}" if "?" not in dsn else dsn
    runner = CliRunner()
    store.close()  # chDB: one open client per directory in this process
    listed = runner.invoke(app, ["versions", "--json", "--store", store_dsn])
    assert listed.exit_code == 0, listed.output
    versions = json.loads(listed.output)["versions"]
    assert [(v["agent"], v["runs"]) for v in versions] == [("support-agent", 40), ("support-agent", 30)]
    assert set(versions[0]) >= {"version", "agent", "runs", "failure_rate", "first_seen", "last_seen"}
    shown = runner.invoke(app, ["versions", "diff", versions[0]["version"], versions[1]["version"], "--store",
                                store_dsn])
    assert shown.exit_code == 0 and "system prompt changed" in shown.output and "Offer a refund first." in shown.output
    missing = runner.invoke(app, ["versions", "diff", "ffffffff", versions[1]["version"], "--store", store_dsn])
    assert missing.exit_code == 1 and "no configuration version 'ffffffff'" in missing.output


def test_overview_chart_names_the_change_next_to_the_significant_shift(store, two_prompts):
    from tracemill.ui.version_chart import config_version_chart

    chart = config_version_chart(store)
    assert [r["value"] for r in chart["rects"]] == ["10%", "67%"]
    assert chart["rects"][1]["label"].startswith("▲ support-agent")
    (note,) = chart["notes"]
    assert "failure rate up to 67% from 10% after system prompt changed" in note


def test_mine_reports_configuration_versions_with_the_change(store, two_prompts):
    result = tracemill.mine(store).to_dict()
    versions = result["regressions"]["config_versions"]
    assert [(v["runs"], v["changes"]) for v in versions] == [(40, []), (30, ["system prompt changed"])]
