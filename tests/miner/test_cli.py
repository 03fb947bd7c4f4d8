"""``tracemill mine`` and ``tracemill flags`` on an embedded store (no server running)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tracemill.cli.app import app

NO_SERVER = ["--server", "http://127.0.0.1:9"]


def _dsn(store: Any) -> str:
    return f"chdb://{store.dsn.path}?database={store.database}"


def _write(store: Any, corpus: Any) -> list[Any]:
    rng = random.Random(5)
    scripts = [corpus.script(mode, "task-0", rng) for mode in ["clean"] * 12 + ["loop", "tool_result_error"] * 2]
    scripts[-1].steps[1].result = {"error": "<script>alert(1)</script> refused"}
    return corpus.write_with_otel(store, scripts)


def test_mine_prints_json_writes_a_report_and_a_second_run_mines_nothing(store, corpus, tmp_path: Path):
    written = _write(store, corpus)
    report = tmp_path / "report.html"
    runner = CliRunner()
    first = runner.invoke(app, ["mine", "--store", _dsn(store), *NO_SERVER, "--json", "--report", str(report)])
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout[first.stdout.index("{"):])
    assert result["traces"] == len(written) == 16
    assert result["counts"] == {"failure": 4, "near_miss": 0, "clean": 12}
    assert {(k["category"], k["kind"]) for k in result["kinds"]} == {("failure", "loop"),
                                                                     ("failure", "tool_result_error")}
    page = report.read_text()
    assert page.count("<img") >= 2 and "data:image/png;base64," in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    again = runner.invoke(app, ["mine", "--store", _dsn(store), *NO_SERVER])
    assert again.exit_code == 0, again.output
    assert "mined 0 traces" in again.stdout


def test_mine_summary_and_flags_listing_with_filters(store, corpus):
    written = _write(store, corpus)
    runner = CliRunner()
    summary = runner.invoke(app, ["mine", "--store", _dsn(store), *NO_SERVER])
    assert summary.exit_code == 0, summary.output
    assert "4 failed" in summary.stdout and "Flags by category and kind" in summary.stdout
    listed = runner.invoke(app, ["flags", "--store", _dsn(store), *NO_SERVER, "--kind", "loop", "--json"])
    assert listed.exit_code == 0, listed.output
    flags = json.loads(listed.stdout)
    loops = {w.trace_id: w.decisive_span for w in written if w.script.mode == "loop"}
    assert {(f["trace_id"], f["span_id"]) for f in flags} == set(loops.items())
    assert {f["kind"] for f in flags} == {"loop"}
    bad = runner.invoke(app, ["flags", "--store", _dsn(store), *NO_SERVER, "--category", "bad"])
    assert bad.exit_code == 1 and "--category must be failure or near_miss (got 'bad')" in bad.output


def test_mine_with_a_bad_since_says_what_it_accepts(store):
    result = CliRunner().invoke(app, ["mine", "--store", _dsn(store), *NO_SERVER, "--since", "yesterday-ish"])
    assert result.exit_code == 1
    assert "time 'yesterday-ish' is not understood" in result.output


def test_mine_prints_the_detector_table_and_flags_detectors_shows_the_latest_run(store, support, tmp_path: Path):
    runner = CliRunner()
    before = runner.invoke(app, ["flags", "--store", _dsn(store), *NO_SERVER, "--detectors", "--json"])
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)["run"] is None
    conversations = support.build(seed=9, tasks=16, trials=4)
    traced = support.write_openinference(store, conversations)
    support.record_outcomes(store, traced)
    report = tmp_path / "report.html"
    mined = runner.invoke(app, ["mine", "--store", _dsn(store), *NO_SERVER, "--report", str(report)])
    assert mined.exit_code == 0, mined.output
    assert "Detectors on labelled runs (grouping: user's identifiers (64 runs))" in mined.stdout
    assert "Detectors on labelled runs" in report.read_text()
    shown = runner.invoke(app, ["flags", "--store", _dsn(store), *NO_SERVER, "--detectors", "--json"])
    latest = json.loads(shown.stdout)
    assert latest["run"]["labelled"] == 64 and latest["run"]["grouping"] == "user's identifiers (64 runs)"
    rows = {d["detector"]: d for d in latest["detectors"]}
    failed = sum(not c.success for c in conversations)
    assert rows["handoff"]["base_rate"] == round(failed / 64, 4)  # one run per conversation: plain rate
    handoffs = [c for c in conversations if c.events[-1].tool == "transfer_to_human_agents"
                or any(e.tool == "transfer_to_human_agents" for e in c.events[-3:])]
    assert rows["handoff"]["runs"] >= len([c for c in handoffs if c.final_text is None])
    table = runner.invoke(app, ["flags", "--store", _dsn(store), *NO_SERVER, "--detectors"])
    assert "give_up" in table.stdout and "handoff" in table.stdout
    assert store.query("SELECT count() FROM tracemill_miner_runs").result_rows[0][0] == 1
