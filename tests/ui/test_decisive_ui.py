"""Decisive-step marks in the review UI, in a real headless Chromium against a real ``tracemill serve``."""

from __future__ import annotations

from playwright.sync_api import expect


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
    page.fill("#author", "pat")
    page.locator("#author").dispatch_event("change")
    flag = page.locator("#current-flag")
    flag.locator("select[name=decisive-span]").select_option(seeded["decision"])
    flag.locator("button.elsewhere").click()
    page.wait_for_url(lambda url: seeded["failed"] not in url)  # saved, on to the next run
    stored = [f for f in ui_server.feedback(trace_id=seeded["failed"]) if f["author"] == "pat"]
    assert sorted((f["kind"], f["span_id"], f["label"]) for f in stored) == sorted([
        ("label", seeded["decisive"], "false_positive"), ("decisive", seeded["decision"], "")])
    assert page.problems == []
