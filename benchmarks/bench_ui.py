"""Server-side render time of the review UI's queue and trace pages against the plain API calls for the same data.

A fresh embedded store gets 100,000 agent runs (five GenAI spans each: an agent, two model calls
with messages, two tool calls, over 30 days, three agent versions), one run of 2,000 spans, and
miner flags on a tenth of the runs (a third of them reviewed). The rows are generated inside
ClickHouse (INSERT … SELECT FROM numbers()), so the setup takes seconds.

Measured in this process, median of several renders after one warm-up, page and API call
alternately (so both see the same load on a shared machine):
- the queue page (the first page of flagged runs, the counts and the overview strip) against
  ``GET /api/flags`` for the same page (``list_flags`` + JSON encoding);
- the page of the 2,000-span run (tree, waterfall, every span's content, flags, feedback) against
  ``GET /api/traces/<id>`` (``get_trace`` + JSON encoding).
Target: each page within 300 ms.

Run: python benchmarks/bench_ui.py [--traces 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

TARGET_MS = 300.0
BIG_TRACE = "b" * 32


def populate(store: Any, traces: int) -> None:
    """100k runs of five spans, flags on every tenth run, a review on a third of those, all in SQL."""
    system = "You are a support agent. " * 4
    message_in = json.dumps([{"role": "system", "parts": [{"type": "text", "content": system}]},
                             {"role": "user", "parts": [{"type": "text", "content": "Where is my order {n}?"}]}])
    message_out = json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "id": "call_{n}",
                                                               "name": "fetch_order", "arguments": {"id": "{n}"}}]}])
    store.command(f"""
        INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
                                 SpanAttributes, Duration, StatusCode, StatusMessage)
        SELECT
            now64(9) - toIntervalSecond(intDiv(number, 5) * 25) + toIntervalMillisecond(number % 5 * 40) AS ts,
            leftPad(lower(hex(intDiv(number, 5) + 1)), 32, '0') AS trace_id,
            leftPad(lower(hex(number + 1)), 16, '0') AS span_id,
            if(number % 5 = 0, '', leftPad(lower(hex(number - number % 5 + 1)), 16, '0')),
            ['invoke_agent support', 'chat gpt-4o', 'execute_tool fetch_order', 'chat gpt-4o',
             'execute_tool refund'][number % 5 + 1],
            if(number % 5 IN (1, 3), 'Client', 'Internal'),
            'support-agent',
            multiIf(
                number % 5 = 0, map('gen_ai.operation.name', 'invoke_agent', 'gen_ai.agent.name', 'support',
                                    'gen_ai.agent.version', toString(intDiv(number, 5) % 3 + 1),
                                    'tracemill.task.id', concat('task-', toString(intDiv(number, 5) % 500))),
                number % 5 IN (1, 3), map('gen_ai.operation.name', 'chat', 'gen_ai.request.model', 'gpt-4o',
                                          'gen_ai.input.messages', replace({message_in!r}, '{{n}}', toString(number)),
                                          'gen_ai.output.messages', replace({message_out!r}, '{{n}}', toString(number)),
                                          'gen_ai.usage.input_tokens', '120', 'gen_ai.usage.output_tokens', '20'),
                map('gen_ai.operation.name', 'execute_tool', 'gen_ai.tool.name', 'fetch_order',
                    'gen_ai.tool.call.arguments', concat('{{"id": "', toString(number), '"}}'),
                    'gen_ai.tool.call.result', '{{"status": "shipped"}}')),
            (number % 5 + 1) * 1000000,
            if(number % 5 = 4 AND intDiv(number, 5) % 10 = 0, 'Error', 'Unset'),
            if(number % 5 = 4 AND intDiv(number, 5) % 10 = 0, 'refund failed: order not found', '')
        FROM numbers({traces * 5})
    """)
    store.command(f"""
        INSERT INTO tracemill_flags (RunId, MinerVersion, TraceId, SpanId, Detector, DetectorVersion, Category,
                                     Severity, Confidence, Evidence, CreatedAt)
        SELECT 'bench', '0', leftPad(lower(hex(t + 1)), 32, '0'), leftPad(lower(hex(t * 5 + 2)), 16, '0'),
               ['tool_error', 'loop', 'give_up', 'excess_steps'][t % 4 + 1],
               '1', if(t % 4 = 3, 'near_miss', 'failure'), ['high', 'medium', 'low', 'critical'][t % 4 + 1],
               (t % 100) / 100, concat('refund failed: order ', toString(t), ' not found'), now64(6)
        FROM (SELECT number * 10 AS t FROM numbers({traces // 10}))
    """)
    store.command(f"""
        INSERT INTO tracemill_feedback (TraceId, SpanId, Name, Author, Kind, Value, Score, Label, Comment, CreatedAt,
                                        UpdatedAt, IsDeleted)
        SELECT leftPad(lower(hex(t + 1)), 32, '0'), leftPad(lower(hex(t * 5 + 2)), 16, '0'), 'flag_review', 'bench',
               'label', concat('{{"detector": "', ['tool_error', 'loop', 'give_up', 'excess_steps'][t % 4 + 1], '"}}'),
               NULL, 'confirmed', '', now64(6), now64(6), 0
        FROM (SELECT number * 30 AS t FROM numbers({traces // 30}))
    """)


def big_trace(store: Any, spans: int) -> None:
    """One run of ``spans`` spans: an agent, then model calls and tool calls one after another, with content."""
    from datetime import datetime, timedelta, timezone

    rnd = random.Random(7)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    tools = json.dumps([{"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}])
    rows = []
    for i in range(spans):
        span_id = f"{i + 1:016x}"
        if i == 0:
            attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}
            name, parent = "invoke_agent researcher", ""
        elif i % 2:
            history = [{"role": "user", "parts": [{"type": "text", "content": f"step {i}: " + "context " * 40}]}]
            attributes = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": json.dumps(history),
                          "gen_ai.tool.definitions": tools, "gen_ai.output.messages": json.dumps(
                              [{"role": "assistant", "parts": [{"type": "tool_call", "id": f"c{i}", "name": "search",
                                                                "arguments": {"query": f"q{rnd.random():.6f}"}}]}])}
            name, parent = "chat gpt-4o", f"{1:016x}"
        else:
            attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                          "gen_ai.tool.call.arguments": json.dumps({"query": "q"}),
                          "gen_ai.tool.call.result": json.dumps({"hits": ["x" * 80] * 5})}
            name, parent = "execute_tool search", f"{1:016x}"
        rows.append([start + timedelta(milliseconds=i * 3), BIG_TRACE, span_id, parent, name, "Internal",
                     "researcher", attributes, 2_000_000 if i else spans * 3_000_000, "Unset", ""])
    store.insert("otel_traces", rows, ["Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind",
                                       "ServiceName", "SpanAttributes", "Duration", "StatusCode", "StatusMessage"])
    store.insert("tracemill_flags", [["bench", "0", BIG_TRACE, f"{1001:016x}", "loop", "1", "failure", "high", 0.8,
                                      "the same search 1,000 times", start]],
                 ["RunId", "MinerVersion", "TraceId", "SpanId", "Detector", "DetectorVersion", "Category", "Severity",
                  "Confidence", "Evidence", "CreatedAt"])


def medians_ms(page: Callable[[], Any], api: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median times of ``page`` and ``api``, measured alternately so both see the same machine load."""
    page(), api()  # warm-up: caches, template compilation
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for work, out in ((page, times[0]), (api, times[1])):
            started = time.perf_counter()
            work()
            out.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--spans", type=int, default=2_000, help="spans of the big run")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    from tracemill.collector.feedback.feedback import list_flags
    from tracemill.collector.server.api import get_trace
    from tracemill.collector.store.store import Store
    from tracemill.ui import pages
    from tracemill.ui.routes import environment

    env = environment()
    with tempfile.TemporaryDirectory() as directory, Store.open(f"chdb://{directory}/store") as store:
        started = time.perf_counter()
        populate(store, args.traces)
        big_trace(store, args.spans)
        counts = store.query("SELECT uniqExact(TraceId), count() FROM otel_traces").result_rows[0]
        print(f"store: {counts[0]:,} traces, {counts[1]:,} spans, {args.traces // 10 + 1:,} flags "
              f"(set up in {time.perf_counter() - started:.1f} s)")

        def queue_page() -> str:
            return env.get_template("queue.html").render(**pages.queue_context(store, {}), auth=False)

        def queue_api() -> str:
            return json.dumps({"flags": list_flags(store, limit=50)})

        def trace_page() -> str:
            context = pages.trace_context(store, BIG_TRACE, {}, rng=random.Random(0))
            return env.get_template("trace.html").render(**context, auth=False)

        def trace_api() -> str:
            return json.dumps(get_trace(store, BIG_TRACE))

        html = trace_page()
        assert html.count("data-span-id=") >= args.spans, "the trace page must show every span"
        results = []
        for label, page, api in (("queue (first page + overview)", queue_page, queue_api),
                                 (f"trace of {args.spans:,} spans", trace_page, trace_api)):
            page_ms, api_ms = medians_ms(page, api, args.repeat)
            ok = page_ms <= TARGET_MS
            results.append(ok)
            print(f"{label:32} page {page_ms:7.1f} ms   API {api_ms:7.1f} ms   ratio {page_ms / api_ms:5.2f}x   "
                  f"target {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'}")
        print(f"trace page size: {len(html) / 1e6:.1f} MB of HTML")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
