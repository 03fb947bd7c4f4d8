"""Seed a store for the review UI tests: agent runs traced through the tracer, then flags on the failures.

Run as ``python seed.py chdb:///abs/path``; prints what the tests need to know as one JSON line.
The runs: the demo's travel desk (one of its three tasks fails on a tool), a run whose answer is
hostile HTML, and a run with two answers to one prompt (the pair the preference view compares).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import tracemill
from tracemill.demo_agent import TASKS, TOOLS, travel_desk

HOSTILE = ('<script>window.__tracemill_xss = "script";</script> and '
           '<img src=x onerror="window.__tracemill_xss = \'img\'"> in the answer')
QUESTION = "Which city should I visit in spring?"


def hostile_run() -> str:
    with tracemill.run("hostile_page", task_id="hostile-html") as run:
        with tracemill.llm_call(provider="scripted", model="echo-1", input_messages=[
                {"role": "user", "content": "Repeat this page: " + HOSTILE}], tool_definitions=TOOLS) as call:
            call.record_output(content=HOSTILE, finish_reasons=["stop"], input_tokens=20, output_tokens=20)
        run.set_output(HOSTILE)
    return str(run.trace_id)


def regenerated_run() -> str:
    """Two samples for one prompt: the second a regeneration of the first."""
    with tracemill.run("city_advice", task_id="city-advice") as run:
        for answer in ("Rome, for the weather and the food.", "Atlantis."):
            with tracemill.llm_call(provider="scripted", model="travel-policy-1", tool_definitions=TOOLS,
                                    input_messages=[{"role": "user", "content": QUESTION}]) as call:
                call.record_output(content=answer, finish_reasons=["stop"], input_tokens=10, output_tokens=5)
        run.set_output("Rome")
    return str(run.trace_id)


def main(dsn: str) -> None:
    tracemill.init(store=dsn, service_name="ui-tests")
    travel = {}
    for task in TASKS:
        with tracemill.run("travel_desk", task_id=task.task_id) as run:
            run.set_output(travel_desk(task))
        travel[task.task_id] = str(run.trace_id)
    hostile = hostile_run()
    regenerated = regenerated_run()
    tracemill.force_flush()

    with tracemill.Store.open(dsn) as store:
        def llm_spans(trace_id: str) -> list[str]:
            return [row[0] for row in store.query(
                "SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} AND GenAiOperation = 'chat' "
                "ORDER BY Timestamp", {"t": trace_id}).result_rows]

        failed = travel["trip-paris-atlantis"]
        decision = llm_spans(failed)[0]  # asked for a flight to Atlantis
        decisive = store.query(  # the tool call that then failed
            "SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} AND GenAiOperation = 'execute_tool'",
            {"t": failed}).result_rows[0][0]
        hostile_span = llm_spans(hostile)[0]
        samples = llm_spans(regenerated)
        now = datetime.now(timezone.utc)
        flag = ("seed", "0", )
        rows = [
            [*flag, failed, decisive, "tool_error", "1", "failure", "high", 0.9,
             "search_flights failed: no airport found for 'Atlantis'", now],
            [*flag, hostile, hostile_span, "suspicious_output", "1", "failure", "medium", 0.7,
             "the answer holds markup: <img src=x onerror=alert(1)>", now],
            [*flag, regenerated, samples[1], "regenerated", "1", "near_miss", "low", 0.4,
             "the answer was regenerated", now],
            [*flag, travel["trip-oslo-rome"], "", "excess_steps", "1", "near_miss", "low", 0.3,
             "3 model calls where peers need 2", now],
        ]
        store.insert("tracemill_flags", rows, ["RunId", "MinerVersion", "TraceId", "SpanId", "Detector",
                                               "DetectorVersion", "Category", "Severity", "Confidence", "Evidence",
                                               "CreatedAt"])
    tracemill.shutdown()
    print(json.dumps({"travel": travel, "failed": failed, "decisive": decisive, "decision": decision,
                      "hostile": hostile, "hostile_span": hostile_span, "regenerated": regenerated,
                      "samples": samples}))


if __name__ == "__main__":
    main(sys.argv[1])
