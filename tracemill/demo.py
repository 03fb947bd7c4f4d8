"""``tracemill demo``: trace a small agent into a store, then read back what was stored."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

import tracemill
from tracemill.demo_agent import TASKS, travel_desk

_RUNS_SQL = """
SELECT TraceId,
       anyIf(TaskId, ParentSpanId = '') AS task,
       count() AS spans,
       countIf(GenAiOperation = 'chat') AS llm_calls,
       countIf(GenAiOperation = 'execute_tool') AS tool_calls,
       countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS errors,
       sum(InputTokens) AS input_tokens,
       sum(OutputTokens) AS output_tokens,
       (max(toUnixTimestamp64Nano(Timestamp) + Duration) - min(toUnixTimestamp64Nano(Timestamp))) / 1e9 AS seconds
FROM otel_traces
WHERE TraceId IN {trace_ids:Array(String)}
GROUP BY TraceId
ORDER BY min(Timestamp)
"""

_SPANS_SQL = """
SELECT SpanId, ParentSpanId, SpanName, StatusCode, Duration, SpanAttributes['gen_ai.tool.call.id'],
       length(Links.SpanId)
FROM otel_traces WHERE TraceId = {trace_id:String} ORDER BY Timestamp
"""


def run_demo(*, store: str | None, runs: int, as_json: bool, console: Console) -> dict[str, Any]:
    """Trace ``runs`` agent runs into ``store`` (default: the embedded store), then report them."""
    from tracemill.collector.dsn import default_store_dsn

    dsn = store or default_store_dsn()
    tracemill.init(store=dsn, service_name="tracemill-demo")
    trace_ids = []
    for i in range(runs):
        task = TASKS[i % len(TASKS)]
        with tracemill.run("travel_desk", task_id=task.task_id, conversation_id=f"demo-{i}") as run:
            run.set_output(travel_desk(task))
        trace_ids.append(run.trace_id)
    tracemill.force_flush()

    with tracemill.Store.open(dsn) as opened:
        rows = opened.query(_RUNS_SQL, {"trace_ids": trace_ids}).named_results()
        report: dict[str, Any] = {"store": opened.location, "runs": list(rows)}
        first_failed = next((r["TraceId"] for r in report["runs"] if r["errors"]), None)
        shown = first_failed or trace_ids[0]
        report["trace"] = {"trace_id": shown, "spans": [
            dict(zip(("span_id", "parent", "name", "status", "duration_ns", "tool_call_id", "links"), row,
                     strict=True))
            for row in opened.query(_SPANS_SQL, {"trace_id": shown}).result_rows
        ]}
    tracemill.shutdown()

    if as_json:
        console.print_json(json.dumps(report, default=str))
    else:
        _print_report(report, console)
    return report


def _print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Agent runs stored in {report['store']}")
    table.add_column("trace id", no_wrap=True)
    table.add_column("task", no_wrap=True)
    for column in ("spans", "llm", "tools", "errors", "tokens in/out", "seconds"):
        table.add_column(column, justify="right")
    for r in report["runs"]:
        table.add_row(r["TraceId"], r["task"], str(r["spans"]), str(r["llm_calls"]), str(r["tool_calls"]),
                      f"[red]{r['errors']}[/]" if r["errors"] else "0", f"{r['input_tokens']}/{r['output_tokens']}",
                      f"{r['seconds']:.4f}")
    console.print(table)

    spans = report["trace"]["spans"]
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent"], []).append(span)
    tree = Tree(f"trace {report['trace']['trace_id']}")

    def add(node: Tree, parent_id: str) -> None:
        for span in children.get(parent_id, []):
            status = "[red]Error[/]" if span["status"] in ("Error", "STATUS_CODE_ERROR") else span["status"]
            extra = f"  call id {span['tool_call_id']}, linked to its decision" if span["links"] else ""
            add(node.add(f"{span['name']}  {status}  {span['duration_ns'] / 1e6:.2f} ms{extra}"), span["span_id"])

    add(tree, "")
    console.print(tree)
