"""Seed a store for the review UI tests: agent runs traced through the tracer, then mined (``tracemill.mine``).

Run as ``python seed.py chdb:///abs/path``; prints what the tests need to know as one JSON line.
The runs: the scripted travel desk of travel_agent.py (one of its three tasks fails on a tool), a run
whose tool reports an error made of hostile HTML that the answer repeats, and a run with two answers
to one prompt (the pair the preference view compares).
"""

from __future__ import annotations

import json
import sys

from travel_agent import TASKS, TOOLS, travel_desk  # beside this script, which runs as a program

import tracemill

HOSTILE = ('<script>window.__tracemill_xss = "script";</script> and '
           '<img src=x onerror="window.__tracemill_xss = \'img\'"> in the answer')
QUESTION = "Which city should I visit in spring?"
PAGE_TOOLS = [{"type": "function", "function": {"name": "render_page", "description": "Render a web page as text.",
                                                "parameters": {"type": "object", "properties": {
                                                    "url": {"type": "string"}}, "required": ["url"]}}}]


def hostile_run() -> str:
    """A page-rendering tool reports an error whose text is markup; the model then repeats the markup."""
    with tracemill.run("hostile_page", task_id="hostile-html") as run:
        request = [{"role": "user", "content": "Render the page and show me what it says."}]
        with tracemill.llm_call(provider="scripted", model="echo-1", input_messages=request,
                                tool_definitions=PAGE_TOOLS) as call:
            call.record_output(tool_calls=[{"id": "call_page_1", "function": {
                "name": "render_page", "arguments": json.dumps({"url": "https://example.test/"})}}],
                finish_reasons=["tool_calls"], input_tokens=20, output_tokens=10)
        result = json.dumps({"error": HOSTILE})
        with tracemill.tool_call("render_page", call_id="call_page_1",
                                 arguments={"url": "https://example.test/"}) as tool:
            tool.record_result({"error": HOSTILE})
        with tracemill.llm_call(provider="scripted", model="echo-1", tool_definitions=PAGE_TOOLS, input_messages=[
                *request, {"role": "assistant", "content": None, "tool_calls": [{"id": "call_page_1", "function": {
                    "name": "render_page", "arguments": json.dumps({"url": "https://example.test/"})}}]},
                {"role": "tool", "tool_call_id": "call_page_1", "content": result}]) as call:
            call.record_output(content="The page says: " + HOSTILE, finish_reasons=["stop"], input_tokens=40,
                               output_tokens=20)
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
        def spans(trace_id: str, operation: str) -> list[str]:
            return [row[0] for row in store.query(
                "SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} AND GenAiOperation = {o:String} "
                "ORDER BY Timestamp", {"t": trace_id, "o": operation}).result_rows]

        mined = tracemill.mine(store=store)
        flagged = sorted({flag.trace_id for flag in mined.flags})
        failed = travel["trip-paris-atlantis"]
        decision = spans(failed, "chat")[0]  # asked for a flight to Atlantis
        decisive = spans(failed, "execute_tool")[0]  # the tool call that then failed
        hostile_span = spans(hostile, "chat")[1]  # the answer that repeats the markup
        samples = spans(regenerated, "chat")
    tracemill.shutdown()
    print(json.dumps({"travel": travel, "failed": failed, "decisive": decisive, "decision": decision,
                      "flagged": flagged, "flags": [[f.trace_id, f.span_id, f.detector] for f in mined.flags],
                      "hostile": hostile, "hostile_span": hostile_span, "regenerated": regenerated,
                      "samples": samples}))


if __name__ == "__main__":
    main(sys.argv[1])
