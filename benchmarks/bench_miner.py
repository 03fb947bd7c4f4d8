"""Mining time and memory against a full scan of the same table, at 100k and 1M spans, measured in one run.

Each size runs in a fresh process on a fresh embedded (chDB) store. The store is built by inserting
rows directly, column-oriented: 40 trace templates of an agent (clean runs and runs with tool
errors, error results, loops, give-ups, invalid tool arguments, recoveries, excess steps; chat spans
carry messages and tool definitions, tool spans arguments and results) repeated with fresh trace
ids, about 10 spans a trace. Then, in the same process:

- baselines (best of 3): ``SELECT count(), sum(length(SpanAttributes)) FROM otel_traces``, the full scan
  the issue names (``length`` of a Map reads only its sizes), and the same summing the length of every
  attribute value, which reads all the attribute bytes the miner reads;
- ``tracemill.mine(store)``: every trace (features, detectors, scorer, taxonomy, writing flags and scores);
- the peak resident memory of the process while mining (and how much above what it held before);
- the process CPU time of both (all threads: chDB runs its query threads in this process), which a
  loaded machine inflates far less than wall time.

Then outcomes are recorded for every run of half the tasks, as a user does after a first mine, and the
store is mined again: the scorer's model changes, so every trace is re-scored by the supervised model. A last
mine finds nothing new and the same labels, so it reads no trace.

Prints the mining time, its ratio to the scan, the peak memory, the re-scoring time, and the 1M/100k
time ratio (linear scaling gives 10). Target: 1M spans mined, re-scoring included, in under 5 s.

Run: python benchmarks/bench_miner.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

TOOLS = [
    {"type": "function", "function": {"name": "lookup_order", "description": "Look up an order by id.",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"],
                    "additionalProperties": False}}},
    {"type": "function", "function": {"name": "search_kb", "description": "Search the help center.",
     "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["query"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund an order.",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                    "required": ["order_id", "amount"], "additionalProperties": False}}},
]  # fmt: skip
MODES = ("clean",) * 28 + ("tool_error", "result_error", "loop", "give_up", "invalid_args", "recovered", "excess",
                           "clean_long", "llm_error", "result_error", "tool_error", "excess")  # fmt: skip


def _template(index: int) -> list[dict[str, Any]]:
    """The spans of one trace template: dicts of the columns that differ per span."""
    rnd = random.Random(index)
    mode = MODES[index % len(MODES)]
    task = f"task-{index % 20}"
    order = f"A-{rnd.randint(100, 999)}"
    spans: list[dict[str, Any]] = []
    clock = [1000]

    def add(name: str, attributes: dict[str, str], duration_ns: int, status: str = "Unset", message: str = "",
            parent: str = "0000000000000001", events: tuple = ()) -> str:
        span_id = f"{len(spans) + 2:016x}"
        spans.append({"offset": clock[0], "SpanId": span_id, "ParentSpanId": parent, "SpanName": name,
                      "SpanAttributes": {"tracemill.task.id": task, **attributes}, "Duration": duration_ns,
                      "StatusCode": status, "StatusMessage": message, "events": events})
        clock[0] += duration_ns + 1000
        return span_id

    history = [{"role": "system", "parts": [{"type": "text", "content": "You are a support agent. Use tools."}]},
               {"role": "user", "parts": [{"type": "text", "content": f"Where is my order {order}? Refund it."}]}]

    def chat(output: dict[str, Any], finish: str = "tool_calls", status: str = "Unset", message: str = "") -> str:
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                      "gen_ai.input.messages": json.dumps(history), "gen_ai.tool.definitions": json.dumps(TOOLS),
                      "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [output],
                                                             "finish_reason": finish}]),
                      "gen_ai.response.finish_reasons": json.dumps([finish]),
                      "gen_ai.usage.input_tokens": str(30 * len(history)), "gen_ai.usage.output_tokens": "25"}
        return add("chat gpt-4o", attributes, rnd.randint(300, 900) * 10**6, status, message)

    def tool(name: str, args: dict[str, Any] | str, result: Any, error: str = "") -> str:
        text = args if isinstance(args, str) else json.dumps(args)
        chat({"type": "tool_call", "id": f"c{len(spans)}", "name": name, "arguments": text})
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                      "gen_ai.tool.call.arguments": text, "gen_ai.tool.call.id": f"c{len(spans) - 1}"}
        if not error:
            attributes["gen_ai.tool.call.result"] = json.dumps(result)
        events = (("exception", {"exception.type": "ToolError", "exception.message": error}),) if error else ()
        history.append({"role": "tool", "parts": [{"type": "tool_call_response", "id": "c", "response": str(result)}]})
        return add(f"execute_tool {name}", attributes, rnd.randint(20, 200) * 10**6,
                   "Error" if error else "Unset", f"ToolError: {error}" if error else "", events=events)

    lookup = {"order_id": order}
    if mode == "tool_error":
        tool("lookup_order", lookup, None, error=f"order service timed out after {rnd.randint(5, 30)} s")
    elif mode == "result_error":
        tool("lookup_order", lookup, {"error": f"order {order} not found"})
    elif mode == "llm_error":
        chat({"type": "text", "content": ""}, "error", "Error", "RateLimitError: 429 too many requests")
    elif mode == "loop":
        for _ in range(4):
            tool("search_kb", {"query": "refund policy"}, ["Refunds take 5 days"])
    elif mode == "invalid_args":
        tool("refund", {"order_id": order, "amount": "everything"}, {"refunded": True})
    elif mode == "recovered":
        tool("lookup_order", lookup, None, error="connection reset")
        tool("lookup_order", lookup, {"status": "delivered"})
    elif mode == "excess":
        for n in range(8):
            tool("search_kb", {"query": f"refund option {n}"}, [f"Article {n}"])
    else:
        tool("lookup_order", lookup, {"status": "delivered"})
        if mode == "clean_long":
            tool("search_kb", {"query": "refund window"}, ["30 days"])
    if mode != "llm_error":
        tool("refund", {"order_id": order, "amount": 20.5}, {"refunded": True}) if mode != "give_up" else None
        answer = ("I'm sorry, I cannot help with that; let me transfer you to a human agent." if mode == "give_up"
                  else f"Order {order} was delivered and refunded.")
        chat({"type": "text", "content": answer}, "stop")
    root = {"offset": 0, "SpanId": "0000000000000001", "ParentSpanId": "", "SpanName": "invoke_agent support",
            "SpanAttributes": {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                               "tracemill.task.id": task},
            "Duration": clock[0], "StatusCode": "Error" if mode == "llm_error" else "Unset",
            "StatusMessage": "RateLimitError: 429 too many requests" if mode == "llm_error" else "", "events": ()}
    return [root, *spans]


def build(store: Any, spans_wanted: int, batch_traces: int = 20_000) -> tuple[int, int]:
    """Insert about ``spans_wanted`` spans; returns (spans, traces)."""
    from tracemill.collector.ingest.rows import SPAN_COLUMNS

    templates = [_template(i) for i in range(40)]
    per_trace = sum(len(t) for t in templates) / len(templates)
    traces = int(spans_wanted / per_trace)
    resource = {"service.name": "support-agent", "service.version": "2.3.0"}
    base = time.time_ns() - 3 * 86400 * 10**9
    spans = done = 0
    while done < traces:
        count = min(batch_traces, traces - done)
        columns: list[list[Any]] = [[] for _ in SPAN_COLUMNS]
        (ts, trace_col, span_col, parent_col, state, name, kind, service, res, scope, scope_v, attrs, duration,
         status, message, ev_ts, ev_name, ev_attrs, l_trace, l_span, l_state, l_attrs) = columns
        for n in range(done, done + count):
            template = templates[n % len(templates)]
            trace_id = f"{n:032x}"
            start = base + n * 2_000_000_000
            for s in template:
                ts.append(start + s["offset"])
                trace_col.append(trace_id)
                span_col.append(s["SpanId"])
                parent_col.append(s["ParentSpanId"])
                name.append(s["SpanName"])
                attrs.append(s["SpanAttributes"])
                duration.append(s["Duration"])
                status.append(s["StatusCode"])
                message.append(s["StatusMessage"])
                ev_ts.append([start + s["offset"]] * len(s["events"]))
                ev_name.append([e[0] for e in s["events"]])
                ev_attrs.append([e[1] for e in s["events"]])
        rows = len(ts)
        for column, value in ((state, ""), (kind, "Internal"), (service, "support-agent"), (res, resource),
                              (scope, "bench"), (scope_v, "1"), (l_trace, []), (l_span, []), (l_state, []),
                              (l_attrs, [])):
            column.extend([value] * rows)
        store.insert_spans(columns)
        spans += rows
        done += count
    return spans, traces


def _label_half_the_tasks(store: Any) -> int:
    """Outcomes for every run of half the tasks (the failing modes failed), as a user records them after a
    first mine: the scorer's model changes, so the next mine re-scores every trace. Returns the runs labelled."""
    from tracemill.collector.feedback.feedback import MAX_FEEDBACK_ITEMS, record_feedback

    failing = {"tool_error", "result_error", "loop", "give_up", "invalid_args", "llm_error"}
    rows = store.query("SELECT TraceId, any(SpanAttributes['tracemill.task.id']) AS task FROM otel_traces "
                       "WHERE ParentSpanId = '' GROUP BY TraceId").result_rows
    items = []
    for trace_id, task in rows:
        if int(task.split("-")[1]) % 2:
            continue
        mode = MODES[int(trace_id, 16) % 40 % len(MODES)]
        items.append({"trace_id": trace_id, "span_id": "", "name": "outcome", "author": "bench", "kind": "outcome",
                      "value": {"success": mode not in failing}})
    for start in range(0, len(items), MAX_FEEDBACK_ITEMS):
        record_feedback(store, items[start:start + MAX_FEEDBACK_ITEMS])
    return len(items)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(spans_wanted: int) -> dict[str, Any]:
    import tracemill
    from tracemill.collector.store.store import Store

    directory = tempfile.mkdtemp(prefix="bench-miner-")
    try:
        store = Store.open(f"chdb://{directory}/store")
        started = time.perf_counter()
        spans, traces = build(store, spans_wanted)
        build_s = time.perf_counter() - started
        store.command("OPTIMIZE TABLE otel_traces FINAL")
        scans, reads, scan_cpu = [], [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            store.query("SELECT count(), sum(length(SpanAttributes)) FROM otel_traces")
            scans.append(time.perf_counter() - t0)
            scan_cpu.append(time.process_time() - c0)
            t0 = time.perf_counter()
            store.query("SELECT count(), sum(arraySum(arrayMap(v -> length(v), mapValues(SpanAttributes)))) "
                        "FROM otel_traces")
            reads.append(time.perf_counter() - t0)
        # One-time imports (scikit-learn, scipy) are timed apart, so both sizes time the mining itself.
        t0 = time.perf_counter()
        import scipy.stats  # noqa: F401
        import sklearn.cluster
        import sklearn.ensemble
        import sklearn.linear_model
        import sklearn.model_selection  # noqa: F401

        import_s = time.perf_counter() - t0
        peak = [0]
        before = _rss_bytes()
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0, c0 = time.perf_counter(), time.process_time()
        result = tracemill.mine(store)
        mine_s, mine_cpu = time.perf_counter() - t0, time.process_time() - c0
        stop.set()
        sampler.join()
        t0 = time.perf_counter()
        again = tracemill.mine(store)
        again_s = time.perf_counter() - t0
        labelled = _label_half_the_tasks(store)
        t0, c0 = time.perf_counter(), time.process_time()
        rescored = tracemill.mine(store)
        rescore_s, rescore_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        settled = tracemill.mine(store)
        settled_s = time.perf_counter() - t0
        store.close()
        return {"spans": spans, "traces": traces, "build_s": round(build_s, 2), "scan_s": round(min(scans), 3),
                "read_s": round(min(reads), 3), "mine_s": round(mine_s, 2), "mine_cpu_s": round(mine_cpu, 2),
                "scan_cpu_s": round(min(scan_cpu), 3), "load": round(os.getloadavg()[0], 1),
                "ratio_to_scan": round(mine_s / min(scans), 1), "ratio_to_read": round(mine_s / min(reads), 1),
                "peak_rss_mb": round((max(peak[0], before) - before) / 2**20), "rss_mb": round(peak[0] / 2**20),
                "import_s": round(import_s, 2), "flags": len(result.flags),
                "failed": result.counts["failure"], "near_miss": result.counts["near_miss"],
                "timings": result.timings, "second_run_s": round(again_s, 2), "second_run_traces": again.traces,
                "labelled": labelled, "rescore_s": round(rescore_s, 2), "rescore_cpu_s": round(rescore_cpu, 2),
                "rescore_traces": rescored.traces, "rescore_model": (rescored.scorer or {}).get("model_name") or "",
                "rescore_timings": rescored.timings, "settled_s": round(settled_s, 2), "settled_traces": settled.traces,
                "settled_timings": settled.timings}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Span counts, comma-separated.")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--child", str(size)], capture_output=True, text=True,
                             check=False)
        if out.returncode:
            sys.exit(f"size {size} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{r['spans']:>9,} spans {r['traces']:>7,} traces: mined in {r['mine_s']:.2f} s "
              f"({r['ratio_to_scan']}x the full scan of {r['scan_s']:.3f} s, {r['ratio_to_read']}x reading every "
              f"attribute value in {r['read_s']:.3f} s), peak RSS {r['rss_mb']} MiB (+{r['peak_rss_mb']} MiB), "
              f"{r['failed']:,} failed / {r['near_miss']:,} near-miss traces; "
              f"again (nothing new) {r['second_run_s']:.2f} s"
              f"\n    CPU: mining {r['mine_cpu_s']:.2f} s, scan {r['scan_cpu_s']:.3f} s (all threads of the process; "
              f"load average {r['load']} on {os.cpu_count()} cores); scikit-learn imports before: {r['import_s']} s"
              f"\n    stages: {r['timings']}"
              f"\n    outcomes recorded for {r['labelled']:,} runs of half the tasks; mined again, every trace "
              f"re-scored by the {r['rescore_model']!r} model: {r['rescore_s']:.2f} s ({r['rescore_cpu_s']:.2f} CPU-s, "
              f"{r['rescore_traces']:,} traces)\n    stages: {r['rescore_timings']}"
              f"\n    mined again, nothing new and the same labels: "
              f"{r['settled_s']:.2f} s ({r['settled_traces']:,} traces)\n    stages: {r['settled_timings']}",
              flush=True)
    if len(results) >= 2:
        first, last = results[0], results[-1]
        scale = last["spans"] / first["spans"]
        print(f"time ratio {last['spans']:,}/{first['spans']:,} spans: {last['mine_s'] / first['mine_s']:.1f} "
              f"wall, {last['mine_cpu_s'] / first['mine_cpu_s']:.1f} CPU (linear: {scale:.0f})")


if __name__ == "__main__":
    main()
