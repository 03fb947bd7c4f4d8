"""Decisive-step marks in the review UI, in a real headless Chromium against a real ``tracemill serve``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from .conftest import clean_env, seed, start

# A prediction of the decisive-step ranker on a run of the seeded store, written as ``tracemill mine`` would.
_PREDICT = """
import sys
from datetime import datetime, timezone
import tracemill
trace_id = sys.argv[2]
with tracemill.Store.open(sys.argv[1]) as store:
    span = store.query("SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} AND GenAiOperation = 'chat' "
                       "ORDER BY Timestamp LIMIT 1", {"t": trace_id}).result_rows[0][0]
    store.insert("tracemill_flags", [["r", "1", trace_id, span, "decisive_model", "1", "failure", "decisive_step",
                                      "medium", 0.64, "predicted decisive step: chat (p=0.64); runner-ups: none",
                                      datetime.now(timezone.utc)]],
                 ["RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Kind",
                  "Severity", "Confidence", "Evidence", "CreatedAt"])
    print(span)
"""


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ui-decisive")
    seeded = seed(directory / "store")
    trace_id = seeded["travel"]["trip-lima-cusco"]
    done = subprocess.run([sys.executable, "-c", _PREDICT, f"chdb://{directory / 'store'}", trace_id],
                          capture_output=True, text=True, env=clean_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seeded["predicted"] = (trace_id, done.stdout.strip().splitlines()[-1])
    server = start(directory, seeded)
    try:
        yield server
    finally:
        server.stop()


def _marks(ui_server, trace_id):
    return sorted((f["author"], f["span_id"]) for f in ui_server.feedback(trace_id=trace_id, kind="decisive"))


def test_the_d_key_marks_the_selected_span_and_a_later_mark_replaces_it(page, ui_server):
    seeded = ui_server.seeded
    page.goto(f"{ui_server.url}/ui/traces/{seeded['failed']}")
    expect(page.locator("#decisive-group")).to_contain_text("not marked")
    decision = page.locator(f"li.span[data-span-id='{seeded['decision']}']")
    decision.locator("summary.span-row .name").click()  # selects the span (and opens it)
    page.keyboard.press("d")
    expect(page.locator("#decisive-group .saved")).to_have_text(
        f"saved: span {seeded['decision']} is the decisive step")
    assert _marks(ui_server, seeded["failed"]) == [("reviewer", seeded["decision"])]

    page.reload()
    expect(page.locator("li.span.marked")).to_have_count(1)
    assert page.locator("li.span.marked").get_attribute("data-span-id") == seeded["decision"]
    expect(page.locator("#decisive-group")).to_contain_text(f"{seeded['decision']} by reviewer")

    tool = page.locator("li.span.decisive")  # the failed tool call, open with the page
    tool.locator("button.mark-decisive").click()
    expect(tool.locator(".span-actions .saved")).to_have_text("saved")
    assert _marks(ui_server, seeded["failed"]) == [("reviewer", seeded["decisive"])]  # one mark per author
    assert page.problems == []


def test_rejecting_a_flag_can_name_the_step_where_the_problem_is_instead(page, ui_server):
    seeded = ui_server.seeded
    page.goto(f"{ui_server.url}/ui/traces/{seeded['failed']}")
    flag = page.locator("#current-flag")
    flag.locator("select[name=decisive-span]").select_option(seeded["decision"])
    flag.locator("button.elsewhere").click()
    page.wait_for_url(lambda url: seeded["failed"] not in url)  # saved, on to the next run
    stored = [f for f in ui_server.feedback(trace_id=seeded["failed"], author="reviewer")  # the signed-in reviewer
              if f["kind"] == "decisive" or f["label"] == "false_positive"]
    assert sorted((f["kind"], f["span_id"], f["label"]) for f in stored) == sorted([
        ("label", seeded["decisive"], "false_positive"), ("decisive", seeded["decision"], "")])
    assert page.problems == []


def test_a_predicted_decisive_step_is_highlighted_and_confirming_it_records_a_mark(page, ui_server):
    trace_id, span_id = ui_server.seeded["predicted"]
    page.goto(f"{ui_server.url}/ui/traces/{trace_id}")
    expect(page.locator("#current-flag")).to_contain_text("decisive_step")
    decisive = page.locator("li.span.decisive")
    expect(decisive).to_have_count(1)
    assert decisive.get_attribute("data-span-id") == span_id
    expect(decisive.locator(".decisive-evidence")).to_contain_text("predicted decisive step")
    page.locator("#current-flag button[data-label=confirmed]").click()
    page.wait_for_url(lambda url: trace_id not in url)
    stored = sorted((f["kind"], f["name"], f["span_id"], f["label"]) for f in ui_server.feedback(trace_id=trace_id))
    assert stored == [("decisive", "decisive", span_id, ""), ("label", "flag_review", span_id, "confirmed")]
    assert page.problems == []
