"""The review UI in a real headless Chromium against a real ``tracemill serve`` on a seeded store.

Tests run in file order on one server: the read-only ones first, then the ones that store feedback.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect


def _decisive_in_view(page) -> bool:
    return page.evaluate("""() => {
        const el = document.querySelector('li.span.decisive');
        const box = el.getBoundingClientRect();
        return box.top < window.innerHeight && box.bottom > 0;
    }""")


def test_queue_lists_flagged_runs_worst_first_and_opens_one_with_its_decisive_span(page, ui_server, artifacts):
    seeded = ui_server.seeded
    rows = page.locator("tr.queue-row")
    expect(rows).to_have_count(len(seeded["flagged"]))  # the runs the miner flagged
    assert rows.nth(0).get_attribute("data-trace-id") == seeded["failed"]  # a failed tool call (confidence 0.9)
    assert rows.nth(1).get_attribute("data-trace-id") == seeded["hostile"]  # an error in a tool result (0.85)
    expect(page.locator("#left-count")).to_have_text(str(len(seeded["flagged"])))
    assert page.locator(".overview svg rect").count() >= 3  # flags per day, failure rate, taxonomy groups
    expect(page.locator(".overview figcaption").nth(2)).to_have_text("Failure rate per configuration version")
    assert page.locator(".overview figure").nth(2).locator("rect.bar").count() >= 1  # the seeded agent's versions
    page.screenshot(path=str(artifacts / "queue.png"))

    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile("selected"))
    page.keyboard.press("k")
    expect(rows.nth(0)).to_have_class(re.compile("selected"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(f"/ui/traces/{seeded['failed']}"))

    decisive = page.locator("li.span.decisive")
    expect(decisive).to_have_count(1)
    assert decisive.get_attribute("data-span-id") == seeded["decisive"]
    expect(decisive.locator(".decisive-evidence")).to_contain_text("no airport found for 'Atlantis'")
    page.wait_for_function("() => { const b = document.querySelector('li.span.decisive').getBoundingClientRect();"
                           " return b.top < window.innerHeight && b.bottom > 0; }")
    assert _decisive_in_view(page)
    assert page.locator("#page").get_attribute("data-edit-target") == seeded["decision"]  # the call behind it
    spans = page.locator("li.span[data-span-id]")
    assert spans.count() == 5  # the failed run: workflow, agent, chat, failed tool call, chat
    expect(page.locator("li.span.error")).to_have_count(1)
    page.screenshot(path=str(artifacts / "trace.png"))
    assert page.problems == []


def test_trace_content_is_escaped_and_runs_nothing(page, ui_server):
    seeded = ui_server.seeded
    page.goto(f"{ui_server.url}/ui/traces/{seeded['hostile']}")
    tool = page.locator("li.span.decisive")  # the tool whose result is the markup, shown with the page
    expect(tool).to_contain_text('<script>window.__tracemill_xss = \\"script\\";</script>')
    evidence = page.locator(".flag.current .evidence")
    expect(evidence).to_contain_text("<img src=x onerror=")
    answer = page.locator(f"li.span[data-span-id='{seeded['hostile_span']}']")
    answer.locator("summary.span-row").click()  # its content is loaded now, as a fragment
    expect(answer.locator(".conversation").last).to_contain_text(
        'The page says: <script>window.__tracemill_xss = "script";</script> and <img src=x onerror=')
    assert page.locator("img").count() == 0
    assert page.evaluate("() => document.querySelectorAll('script').length") == 1  # /ui/static/ui.js only
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__tracemill_xss === undefined")
    assert page.problems == []


def test_tool_arguments_are_checked_against_the_schema_as_you_type(page, ui_server):
    page.goto(f"{ui_server.url}/ui/traces/{ui_server.seeded['failed']}")
    page.keyboard.press("e")
    editor = page.locator(f"li.span[data-span-id='{ui_server.seeded['decision']}'] form.editor")
    expect(editor).to_be_visible()
    check = editor.locator(".tool-call .schema-check").first
    expect(check).to_have_text("arguments match the schema")
    editor.locator(".tool-call textarea[name=arguments]").first.fill('{"origin": 5}')
    expect(check).to_have_text("arguments.origin: 5 is not of type 'string'")  # the server's jsonschema check
    editor.locator(".tool-call textarea[name=arguments]").first.fill('{"origin": "Paris"')
    expect(check).to_contain_text("the argument text is not JSON")
    assert not ui_server.feedback(trace_id=ui_server.seeded["failed"], author="reviewer")  # checks store nothing
    names = editor.locator(".tool-call select[name=tool] option").all_inner_texts()
    assert names == ["search_flights", "get_weather"]  # from the span's recorded gen_ai.tool.definitions
    assert all("status of 400" in problem for problem in page.problems), page.problems  # the refused checks only


def test_refused_correction_shows_the_error_and_stores_nothing(page, ui_server):
    seeded = ui_server.seeded
    page.goto(f"{ui_server.url}/ui/traces/{seeded['failed']}")
    before = ui_server.feedback(trace_id=seeded["failed"])
    page.keyboard.press("e")
    editor = page.locator(f"li.span[data-span-id='{seeded['decision']}'] form.editor")
    editor.locator(".tool-call textarea[name=arguments]").first.fill('{"origin": 5, "destination": "Rome"}')
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    error = editor.locator("p.form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Not saved")
    expect(error).to_contain_text("search_flights")
    assert f"/ui/traces/{seeded['failed']}" in page.url  # no next item opened
    assert ui_server.feedback(trace_id=seeded["failed"]) == before
    assert all("400" in problem for problem in page.problems), page.problems  # the refused POST only


def test_correction_with_the_keyboard_is_stored_and_the_next_run_opens(page, ui_server, tmp_path):
    seeded = ui_server.seeded
    page.goto(f"{ui_server.url}/ui/?reviewed=no")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(f"/ui/traces/{seeded['failed']}"))
    page.keyboard.press("e")  # opens the decision behind the failed tool call
    editor = page.locator(f"li.span[data-span-id='{seeded['decision']}'] form.editor")
    expect(editor).to_be_visible()
    page.keyboard.type("There is no airport in Atlantis; tell me another destination and I will look again.")
    editor.locator(".remove-call").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    page.wait_for_url(re.compile(f"/ui/traces/{seeded['hostile']}"))  # the next run of the queue

    stored = {(f["kind"], f["name"]): f for f in ui_server.feedback(trace_id=seeded["failed"])}
    correction = stored[("correction", "correction")]
    assert correction["span_id"] == seeded["decision"]
    assert correction["author"] == "reviewer"
    assert correction["value"] == {
        "output": "There is no airport in Atlantis; tell me another destination and I will look again.",
        "tool_calls": []}
    review = stored[("label", "flag_review")]
    assert (review["span_id"], review["label"], review["value"]) == (
        seeded["decisive"], "confirmed", {"detector": "tool_error"})
    page.goto(f"{ui_server.url}/ui/")  # the run stays in the queue for the miner's other flag (give_up)
    expect(page.locator(f"tr.queue-row[data-trace-id='{seeded['failed']}']")).to_contain_text("1 open / 2")
    assert page.problems == []

    # The pair is in the DPO dataset exported through the server: chosen = the correction, rejected = the
    # recorded answer (the tool call to Atlantis).
    out = tmp_path / "dpo"
    done = ui_server.cli("export", "dpo", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for name in ("train.jsonl", "eval.jsonl")
            for line in (out / name).read_text().splitlines() if line.strip()]
    pairs = [r for r in rows if "There is no airport in Atlantis" in json.dumps(r["chosen"])]
    assert len(pairs) == 1, rows
    assert "search_flights" in json.dumps(pairs[0]["rejected"]) and "Atlantis" in json.dumps(pairs[0]["rejected"])
    assert "Fly me from Paris to Atlantis" in json.dumps(pairs[0]["prompt"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "dpo" and sum(manifest["splits"].values()) == len(rows)


def test_false_positive_key_reviews_the_flag_and_opens_the_next_run(page, ui_server):
    seeded = ui_server.seeded
    page.goto(f"{ui_server.url}/ui/traces/{seeded['hostile']}?reviewed=no")
    page.keyboard.press("f")
    page.wait_for_url(re.compile(r"/ui/traces/(?!" + seeded["hostile"] + ")"))
    (review,) = [f for f in ui_server.feedback(trace_id=seeded["hostile"]) if f["name"] == "flag_review"]
    assert (review["label"], review["value"]) == ("false_positive", {"detector": "tool_error"})
    assert page.problems == []


def test_preference_between_two_answers_to_one_prompt_is_stored(page, ui_server):
    seeded = ui_server.seeded
    page.goto(f"{ui_server.url}/ui/traces/{seeded['regenerated']}")
    sides = page.locator(".compare .side")
    expect(sides).to_have_count(2)
    assert {sides.nth(0).get_attribute("data-span-id"), sides.nth(1).get_attribute("data-span-id")} == set(
        seeded["samples"])
    rome = sides.filter(has_text="Rome, for the weather")
    rome.locator("button[data-kind=preference]").click()
    page.wait_for_url(lambda url: seeded["regenerated"] not in url)  # saved, and the next item opened
    (preference,) = [f for f in ui_server.feedback(trace_id=seeded["regenerated"]) if f["kind"] == "preference"]
    assert preference["span_id"] == seeded["samples"][0]
    assert preference["value"] == {"better": seeded["samples"][0], "worse": seeded["samples"][1]}
    assert page.problems == []


def test_run_outcome_and_span_score_are_stored(page, ui_server):
    seeded = ui_server.seeded
    trace_id = seeded["travel"]["trip-lima-cusco"]
    page.goto(f"{ui_server.url}/ui/traces/{trace_id}")
    page.locator(".run-actions button[data-label=success]").click()
    expect(page.locator(".run-actions .saved")).to_have_text("saved")
    span = page.locator("li.span.kind-llm:not(.decisive)").first
    span.locator("summary.span-row").click()
    span.locator(".span-actions input[name=score]").fill("0.25")
    span.locator(".span-actions button[data-kind=score]").click()
    expect(span.locator(".span-actions .saved")).to_have_text("saved")
    stored = {f["kind"]: f for f in ui_server.feedback(trace_id=trace_id)}
    outcome = stored["outcome"]
    assert (outcome["span_id"], outcome["label"], outcome["score"]) == ("", "success", 1.0)
    assert json.dumps(stored["outcome"]["value"]) == '{"success": true}'
    assert (stored["score"]["span_id"], stored["score"]["score"]) == (span.get_attribute("data-span-id"), 0.25)
    assert page.problems == []
