"""``tracemill eval build|list|run|compare`` on a reviewed store, against the scripted model over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import World, cli, cli_json

from tracemill.trainer.evals.cases import decision_case_id


def _run(world: World, suite: str, url: str, *extra: str) -> dict:
    result = cli_json("run", suite, "--model", "travel-desk", "--base-url", url, "--store", world.dsn, *extra)
    assert {"run_id", "passed", "total"} <= set(result)
    return result


def _suite(world: World, name: str, *extra: str) -> dict:
    built = cli_json("build", name, "--from", "corrections", "--store", world.dsn, *extra)
    assert built["suite"] == name
    return built


def _compare(world: World, baseline: dict, candidate: dict, *extra: str) -> tuple[int, dict]:
    done = cli("compare", baseline["run_id"], candidate["run_id"], "--store", world.dsn, "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_build_makes_one_decision_case_per_corrected_span_and_a_new_version_each_time(world):
    first = _suite(world, "build-versions")
    second = _suite(world, "build-versions", "--limit", "5")
    assert first["version"] == 1 and first["cases"] == len(world.corrected) == first["by_kind"]["decision"]
    assert second["version"] == 2 and second["cases"] == 5
    listed = cli_json("list", "--store", world.dsn)
    versions = {(s["suite"], s["version"]): s["cases"] for s in listed["suites"]}
    assert versions[("build-versions", 1)] == len(world.corrected) and versions[("build-versions", 2)] == 5


def test_candidate_repeating_the_original_mistakes_is_a_regression_listing_every_corrected_case(world, models):
    _suite(world, "gate-mistakes")
    fixed = _run(world, "gate-mistakes", models["fixed"])
    old = _run(world, "gate-mistakes", models["old"])
    assert (fixed["passed"], fixed["total"]) == (len(world.corrected), len(world.corrected))
    assert old["passed"] == 0
    code, result = _compare(world, fixed, old)
    assert code == 1 and result["verdict"] == "regression" and result["p_value"] < 0.001
    assert sorted(result["regressed"]) == sorted(decision_case_id(t, s) for t, s in world.corrected)
    assert result["improved"] == []


def test_candidate_making_the_corrected_decisions_is_an_improvement(world, models):
    _suite(world, "gate-fixed")
    old = _run(world, "gate-fixed", models["old"])
    fixed = _run(world, "gate-fixed", models["fixed"])
    code, result = _compare(world, old, fixed)
    assert code == 0 and result["verdict"] == "improvement"
    assert len(result["improved"]) == len(world.corrected) and result["regressed"] == []
    # Each run names the configuration versions its traced decisions recorded; the collector stored their content.
    versions = set(old["summary"]["config_versions"]) | set(fixed["summary"]["config_versions"])
    assert versions and all(len(v) == 12 for v in versions)
    for version in versions:
        shown = subprocess.run([sys.executable, "-m", "tracemill.cli", "versions", "diff", version, version, "--json",
                                "--store", world.dsn], capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr


def test_two_runs_of_the_same_candidate_are_no_significant_change(world, models):
    _suite(world, "gate-same")
    first, second = _run(world, "gate-same", models["half"]), _run(world, "gate-same", models["half"])
    done = cli("compare", first["run_id"], second["run_id"], "--store", world.dsn)
    assert done.returncode == 0, done.stderr
    assert "no significant change" in done.stdout and "p = 1 " in done.stdout


def test_candidate_right_on_half_the_cases_is_a_regression(world, models):
    _suite(world, "gate-half")
    fixed, half = _run(world, "gate-half", models["fixed"]), _run(world, "gate-half", models["half"])
    assert half["passed"] == len(world.corrected) // 2
    code, result = _compare(world, fixed, half)
    assert code == 1 and result["verdict"] == "regression" and result["p_value"] < 0.05
    assert len(result["regressed"]) == len(world.corrected) - half["passed"] and result["improved"] == []


def test_repeats_report_pass_at_k_and_compare_by_paired_bootstrap(world, models):
    _suite(world, "gate-repeat")
    fixed = _run(world, "gate-repeat", models["fixed"], "--repeat", "3", "--concurrency", "4")
    old = _run(world, "gate-repeat", models["old"], "--repeat", "3")
    assert fixed["summary"]["pass_at_k"] == fixed["summary"]["pass_hat_k"] == 1.0
    assert len(fixed["results"]) == 3 * len(world.corrected)
    assert old["summary"]["pass_at_k"] == 0.0
    code, result = _compare(world, fixed, old)
    assert code == 1 and result["test"] == "paired bootstrap of per-case pass rates" and result["p_value"] < 0.01


def test_compare_writes_junit_and_html_report_with_both_traces(world, models, tmp_path):
    _suite(world, "gate-files")
    half, fixed = _run(world, "gate-files", models["half"]), _run(world, "gate-files", models["fixed"])
    junit, report = tmp_path / "eval.xml", tmp_path / "eval.html"
    code, result = _compare(world, half, fixed, "--junit", str(junit), "--report", str(report))
    assert code == 0 and result["verdict"] in ("improvement", "no significant change")
    suite = ET.parse(junit).getroot()
    assert int(suite.get("tests")) == len(world.corrected) and int(suite.get("failures")) == 0
    html = report.read_text()
    for case_id in result["improved"]:
        assert case_id in html
    assert html.count('data-status="improved"') == len(result["improved"])
    assert fixed["results"][0]["trace_id"] in html


def test_must_pass_case_failing_is_a_regression_even_without_significance(world, models):
    _suite(world, "gate-must", "--must-pass")
    _suite(world, "gate-plain")
    env = {"EVAL_FAIL_CASE": decision_case_id(*sorted(world.corrected)[0])}
    for suite, expected, code_expected in (("gate-must", "regression", 1), ("gate-plain", "no significant change", 0)):
        baseline = _run(world, suite, models["fixed"])
        done = cli("run", suite, "--model", "m", "--base-url", models["fixed"], "--scorer", "scorers:all_but_one",
                   "--store", world.dsn, "--json", env=env)
        assert done.returncode == 0, done.stderr
        candidate = json.loads(done.stdout)
        assert candidate["passed"] == len(world.corrected) - 1
        code, result = _compare(world, baseline, candidate)
        assert (code, result["verdict"]) == (code_expected, expected)
        assert result["regressed"] == [env["EVAL_FAIL_CASE"]]


def test_bad_input_is_one_line_and_exit_1(world):
    for args, message in (
        (("run", "no-such-suite", "--model", "m", "--store", world.dsn), "no eval suite named 'no-such-suite'"),
        (("build", "x", "--from", "rumours", "--store", world.dsn), "--from must be one of"),
        (("compare", "feedbeef", "deadbeef", "--store", world.dsn), "no eval run 'feedbeef'"),
        (("run", "x@two", "--model", "m", "--store", world.dsn), "suite version must be a whole number"),
    ):
        done = cli(*args)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2
