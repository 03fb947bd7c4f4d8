"""The review UI's Evals pages in headless Chromium: suites and runs listed, a comparison coloured case by case."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import World, cli


@pytest.fixture(scope="module")
def served(world: World, models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict, dict]]:
    """Two runs of one suite (half right, then fixed), then ``tracemill serve`` owning the store."""
    assert cli("build", "ui-suite", "--store", world.dsn).returncode == 0
    runs = []
    for name in ("half", "fixed"):
        done = cli("run", "ui-suite", "--model", "m", "--base-url", models[name], "--store", world.dsn, "--json")
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    spool = tmp_path_factory.mktemp("spool")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tracemill.cli", "serve", "--store", world.dsn, "--spool",
                             str(spool), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=5).json()["store"]["available"]:
                    break
            except (httpx.TransportError, ValueError, KeyError):
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "tracemill serve did not come up"
            time.sleep(0.2)
        yield url, runs[0], runs[1]
    finally:
        proc.terminate()
        proc.wait(30)


def test_evals_page_lists_runs_and_the_comparison_colours_each_case_and_links_both_traces(served, world, tmp_path,
                                                                                       browser):
    url, half, fixed = served
    errors: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{url}/ui/")
        page.click("a.evals-link")
        page.wait_for_url("**/ui/evals")
        assert "ui-suite" in page.inner_text("#suites")
        page.check(f'#runs tr[data-run="{half["run_id"]}"] input[name="baseline"]')
        page.check(f'#runs tr[data-run="{fixed["run_id"]}"] input[name="candidate"]')
        page.click("#compare")
        page.wait_for_selector("#verdict")
        assert page.inner_text("#verdict") == "improvement"
        improved = page.locator("tr.case-improved")
        assert improved.count() == len(world.corrected) - half["passed"] > 0
        assert page.locator("tr.case-same").count() == half["passed"]
        assert page.locator("tr.case-regressed").count() == 0
        colour = improved.first.evaluate("row => getComputedStyle(row).backgroundColor")
        assert colour == "rgb(215, 245, 221)"
        page.screenshot(path=str(tmp_path / "eval-compare.png"), full_page=True)
        improved.first.locator("a.candidate-trace").click()
        page.wait_for_url("**/ui/traces/*")
        assert page.url.split("/ui/traces/")[1].split("?")[0] in {r["trace_id"] for r in fixed["results"]}
        page.go_back()
        page.goto(f"{url}/ui/evals/compare?baseline={fixed['run_id']}&candidate={half['run_id']}")
        assert page.inner_text("#verdict") == "regression"
        assert page.locator("tr.case-regressed").count() == len(world.corrected) - half["passed"]
        assert errors == []
        response = page.goto(f"{url}/ui/evals/compare?baseline=nope&candidate={half['run_id']}")
        assert response is not None and response.status == 404
        assert "no eval run 'nope'" in page.inner_text("main")
    finally:
        context.close()


def test_eval_list_asks_the_server_that_owns_the_embedded_store(served, world):
    url, half, fixed = served
    done = cli("list", "--suite", "ui-suite", "--server", url, "--store", world.dsn, "--json")
    assert done.returncode == 0, done.stderr  # the store is held by the server: only the server can answer
    listed = json.loads(done.stdout)
    assert {s["suite"] for s in listed["suites"]} == {"ui-suite"}
    assert [r["run_id"] for r in listed["runs"]] == [fixed["run_id"], half["run_id"]]  # newest first
    assert [r["passed"] for r in listed["runs"]] == [fixed["passed"], half["passed"]]
    refused = cli("list", "--store", world.dsn, "--server", "http://127.0.0.1:9")  # no server: the store is locked
    assert refused.returncode == 1 and "tracemill serve" in refused.stderr and "Traceback" not in refused.stderr
