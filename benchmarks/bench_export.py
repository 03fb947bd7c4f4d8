"""DPO export throughput from a store holding 100k corrections, against a plain SELECT of the same rows.

A fresh embedded (chDB) store gets N LLM spans shaped like the tracer's (system instructions, input
messages with an earlier tool call and its result, an output tool call, two tool definitions whose
parameter schemas differ) and one correction per span, each valid for its span. The spans and the
feedback are generated inside ClickHouse (``INSERT ... SELECT FROM numbers(N)``): the benchmark is
about reading them back, not about writing them.

Measured in the same run, on the same store:

- baseline: a plain ``SELECT`` of the same columns the export needs (the feedback joined to its spans'
  attributes), rows fetched into Python, nothing parsed;
- ``build``: ``tracemill.trainer.build("dpo")``: feedback, conflicts, spans, rows, hygiene, split;
- ``export``: ``tracemill.trainer.export("dpo")``: the same plus train/eval JSONL, Parquet and the manifest.

Target: the export of 100k rows under 10 s.

Run: python benchmarks/bench_export.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

SYSTEM = json.dumps([{"type": "text", "content": "You are a support agent. Look orders up before refunding."}])
TOOLS = json.dumps([
    {"type": "function", "name": "lookup_order", "description": "Find an order.",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}},
    {"type": "function", "name": "refund", "description": "Refund an order.",
     "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                    "required": ["order_id", "amount"]}},
])


def fill(store, rows: int) -> None:
    """N LLM spans (one trace each, tasks of 10 traces) and one correction per span, made in ClickHouse."""
    input_messages = (
        "concat('[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Refund order A-', toString(number), "
        "'\"}]},{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"call_1\",\"name\":\"lookup_order\","
        "\"arguments\":{\"order_id\":\"A-', toString(number), '\"}}]},{\"role\":\"tool\",\"parts\":[{\"type\":"
        "\"tool_call_response\",\"id\":\"call_1\",\"response\":{\"paid\":', toString(number % 97), "
        "',\"status\":\"damaged\"}}]}]')"
    )
    output_messages = (
        "concat('[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"call_2\",\"name\":\"refund\","
        "\"arguments\":{\"order_id\":\"A-', toString(number), '\",\"amount\":', "
        "toString(number % 97 * 10 + 1), '}}]}]')"
    )
    trace = "lower(hex(toFixedString(concat(reinterpretAsString(toUInt64(number)), 'traceid1'), 16)))"
    span = "lower(hex(toFixedString(reinterpretAsString(toUInt64(number + 1)), 8)))"
    store.command(f"""
        INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
            ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,
            StatusMessage)
        SELECT now64(9) + toIntervalMillisecond(number), {trace}, {span}, '', '', 'chat support-1', 'Client',
            'bench', map(), 'bench', '', map(
                'gen_ai.operation.name', 'chat', 'tracemill.task.id', concat('task-', toString(intDiv(number, 10))),
                'gen_ai.system_instructions', '{SYSTEM}', 'gen_ai.tool.definitions', '{TOOLS}',
                'gen_ai.input.messages', {input_messages}, 'gen_ai.output.messages', {output_messages}),
            1000, 'Unset', ''
        FROM numbers({rows})""")
    store.command(f"""
        INSERT INTO tracemill_feedback (TraceId, SpanId, Name, Author, Kind, Value, Score, Label, Comment, CreatedAt,
            UpdatedAt, IsDeleted)
        SELECT {trace}, {span}, 'correction', 'bench', 'correction',
            concat('{{"output":null,"tool_calls":[{{"id":"call_2","name":"refund","arguments":{{"order_id":"A-',
                   toString(number), '","amount":', toString(number % 97), '}}}}]}}'),
            NULL, '', '', now64(6), now64(6), 0
        FROM numbers({rows})""")


def baseline(store) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), time.process_time()
    result = store.query(
        "SELECT f.TraceId, f.SpanId, f.Value, s.SpanAttributes['gen_ai.system_instructions'], "
        "s.SpanAttributes['gen_ai.input.messages'], s.SpanAttributes['gen_ai.output.messages'], "
        "s.SpanAttributes['gen_ai.tool.definitions'], s.TaskId "
        "FROM tracemill_feedback AS f FINAL "
        "INNER JOIN otel_traces AS s ON f.TraceId = s.TraceId AND f.SpanId = s.SpanId "
        "WHERE f.IsDeleted = 0 AND f.Kind = 'correction'"
    ).result_rows
    return time.perf_counter() - start, time.process_time() - cpu, len(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    from tracemill.collector.store.store import Store
    from tracemill.trainer import build, export

    directory = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        store = Store.open(f"chdb://{directory / 'store'}")
        start = time.perf_counter()
        fill(store, args.rows)
        print(f"store: {args.rows:,} LLM spans and corrections made in {time.perf_counter() - start:.1f} s")
        base_s, base_cpu, base_rows = baseline(store)
        start, cpu = time.perf_counter(), time.process_time()
        train, held_out, _ = build("dpo", store=store, eval_fraction=0.1)
        build_s, build_cpu = time.perf_counter() - start, time.process_time() - cpu
        built = len(train) + len(held_out)
        del train, held_out  # the export below builds its own rows
        start, cpu = time.perf_counter(), time.process_time()
        manifest = export("dpo", store=store, output=directory / "dpo", eval_fraction=0.1)
        export_s, export_cpu = time.perf_counter() - start, time.process_time() - cpu
        store.close()
        rows = manifest["splits"]["train"] + manifest["splits"]["eval"]
        assert rows == base_rows == args.rows == built, (rows, base_rows, args.rows, built)
        size_mb = sum(p.stat().st_size for p in (directory / "dpo").iterdir()) / 1e6
        # Wall time depends on what else the machine runs; CPU time (this process, chDB's threads included)
        # is what the work costs.
        print(f"plain SELECT of the same rows: {base_s:6.2f} s wall, {base_cpu:6.2f} s CPU  "
              f"({base_rows / base_s:>9,.0f} rows/s)")
        print(f"build (rows in memory):        {build_s:6.2f} s wall, {build_cpu:6.2f} s CPU  "
              f"({rows / build_s:>9,.0f} rows/s)  {build_s / base_s:.1f}x the SELECT")
        print(f"export (JSONL + Parquet):      {export_s:6.2f} s wall, {export_cpu:6.2f} s CPU  "
              f"({rows / export_s:>9,.0f} rows/s)  {export_s / base_s:.1f}x the SELECT, {size_mb:.0f} MB written")
        print(f"target: export of 100k rows under 10 s -> {'met' if export_s < 10 else 'NOT met'} "
              f"(CPU time {'under' if export_cpu < 10 else 'over'} 10 s)")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
