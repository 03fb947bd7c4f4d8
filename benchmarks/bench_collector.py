"""Sustained ingest of ``tracemill serve`` against a raw column-oriented insert, measured in one run.

Several client processes POST OTLP protobuf batches to a real ``tracemill serve`` on a fresh
embedded (chDB) store, as fast as it acknowledges them (429/503 are retried after Retry-After).
The clock runs from the first request until every span is in ClickHouse and the spool is empty,
so the figure is spans per second *stored*, not merely acknowledged. Server memory (RSS) is
sampled throughout.

The baseline is the same rows (the same requests converted by the same code, not timed)
inserted column-oriented through clickhouse-connect into another fresh embedded store of the
same schema, in inserts of the writer's batch size with deduplication tokens, as the writer
does. It runs in this process before the server starts, so the two never share the CPU.

Run: python benchmarks/bench_collector.py [--spans 200000] [--clients 4] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

SERVICE_NAMES = ("support-agent", "research-agent", "billing-agent")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet")
TOOLS = ("search", "fetch_order", "refund", "lookup_user")


def make_request(client: int, index: int, spans: int) -> Any:
    """One OTLP request of ``spans`` GenAI-shaped spans (agent → LLM → tool), deterministic per (client, index)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, float):
            return KeyValue(key=key, value=AnyValue(double_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    rnd = random.Random(client * 1_000_003 + index)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = SERVICE_NAMES[client % len(SERVICE_NAMES)]
    resource_spans.resource.attributes.extend(
        [kv("service.name", service), kv("service.version", "1.4.2"), kv("host.name", f"worker-{client}")]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tracemill"
    scope_spans.scope.version = "0.1.0"
    now = time.time_ns() - 3_600_000_000_000
    trace_id = b""
    root_id = b""
    llm_id = b""
    for i in range(spans):
        span = scope_spans.spans.add()
        step = i % 5
        if step == 0:
            trace_id = rnd.randbytes(16)
            root_id = rnd.randbytes(8)
        span.trace_id = trace_id
        span.span_id = root_id if step == 0 else rnd.randbytes(8)
        start = now + (index * spans + i) * 1_000_000
        span.start_time_unix_nano = start
        span.end_time_unix_nano = start + rnd.randint(200_000, 900_000_000)
        if step == 0:
            span.name = f"invoke_agent {service}"
            span.kind = 1
            span.attributes.extend([kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", service),
                                    kv("tracemill.task.id", f"task-{rnd.randint(1, 500)}")])
        elif step in (1, 3):
            model = MODELS[rnd.randrange(len(MODELS))]
            llm_id = span.span_id
            span.parent_span_id = root_id
            span.name = f"chat {model}"
            span.kind = 3
            span.attributes.extend([
                kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                kv("gen_ai.request.model", model), kv("gen_ai.response.model", model),
                kv("gen_ai.response.id", f"chatcmpl-{rnd.getrandbits(48):x}"),
                kv("gen_ai.usage.input_tokens", rnd.randint(200, 4000)),
                kv("gen_ai.usage.output_tokens", rnd.randint(10, 600)),
                kv("gen_ai.request.temperature", 0.2),
                kv("gen_ai.output.messages", '[{"role":"assistant","parts":[{"type":"tool_call","name":"search"}]}]'),
            ])
        else:
            tool = TOOLS[rnd.randrange(len(TOOLS))]
            span.parent_span_id = root_id
            span.name = f"execute_tool {tool}"
            span.kind = 1
            span.attributes.extend([
                kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", tool),
                kv("gen_ai.tool.call.id", f"call_{rnd.getrandbits(40):x}"),
                kv("gen_ai.tool.call.arguments", '{"query": "order 1234 status"}'),
                kv("gen_ai.tool.call.result", '{"status": "shipped"}'),
            ])
            link = span.links.add()
            link.trace_id = trace_id
            link.span_id = llm_id
            link.attributes.extend([kv("tracemill.link", "caused_by")])
            if rnd.random() < 0.1:
                span.status.code = 2
                span.status.message = "tool timed out"
                event = span.events.add()
                event.name = "exception"
                event.time_unix_nano = start + 1000
                event.attributes.extend([kv("exception.type", "TimeoutError"), kv("exception.message", "timed out")])
    return request


def client_main(client: int, requests: int, spans: int, url: str, start: Any, out: Any) -> None:
    """One client process: build its payloads, wait for the start signal, send them all."""
    import httpx

    bodies = [make_request(client, j, spans).SerializeToString() for j in range(requests)]
    retries = 0
    with httpx.Client(timeout=60.0) as http:
        start.wait()
        began = time.perf_counter()
        for body in bodies:
            while True:
                response = http.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
                if response.status_code == 200:
                    break
                if response.status_code in (429, 503):
                    retries += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                raise SystemExit(f"client {client}: HTTP {response.status_code}: {response.text[:200]}")
        out.put({"client": client, "seconds": time.perf_counter() - began, "retries": retries})


def raw_insert_baseline(directory: str, clients: int, requests: int, spans: int, insert_rows: int) -> float:
    """Rows/s of the column-oriented insert alone (conversion not timed), on a fresh store."""
    from tracemill.collector.ingest.rows import empty_rows, request_to_rows
    from tracemill.collector.store.store import Store

    groups = []
    rows = empty_rows()
    for client in range(clients):
        for j in range(requests):
            request_to_rows(make_request(client, j, spans), into=rows)
            if len(rows[0]) >= insert_rows:
                groups.append(rows)
                rows = empty_rows()
    if rows[0]:
        groups.append(rows)
    total = sum(len(g[0]) for g in groups)
    with Store.open(f"chdb://{directory}") as store:
        began = time.perf_counter()
        for n, group in enumerate(groups):
            store.insert_spans(group, dedup_token=f"baseline-{n}")
        elapsed = time.perf_counter() - began
        stored = store.query("SELECT count() FROM otel_traces").result_rows[0][0]
    if stored != total:
        raise SystemExit(f"baseline stored {stored} rows, expected {total}")
    return total / elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000, help="total spans to send")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--batch", type=int, default=1000, help="spans per OTLP request")
    parser.add_argument("--insert-rows", type=int, default=20_000, help="rows per insert (server and baseline)")
    args = parser.parse_args(argv)
    import psutil

    requests = max(1, args.spans // (args.clients * args.batch))
    total = requests * args.clients * args.batch
    work = tempfile.mkdtemp(prefix="tracemill-bench-")
    try:
        print(f"{total:,} spans: {args.clients} clients × {requests} requests × {args.batch} spans; "
              f"{args.insert_rows:,} rows per insert; {os.cpu_count()} CPUs")
        baseline = raw_insert_baseline(os.path.join(work, "baseline"), args.clients, requests, args.batch,
                                       args.insert_rows)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TRACEMILL_BATCH_SPANS": str(args.insert_rows), "TRACEMILL_TOKEN": ""}
        server = subprocess.Popen(
            [sys.executable, "-m", "tracemill.cli", "serve", "--store", f"chdb://{work}/server",
             "--port", str(port), "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if get_json(base + "/api/health")["store"]["available"]:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start: " + server.stderr.read().decode()[-2000:])
                time.sleep(0.1)
            proc = psutil.Process(server.pid)
            rss_idle = proc.memory_info().rss
            peak = [rss_idle]
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.is_set():
                    peak[0] = max(peak[0], proc.memory_info().rss)
                    time.sleep(0.05)

            ctx = mp.get_context("spawn")
            start, results = ctx.Event(), ctx.Queue()
            clients = [ctx.Process(target=client_main,
                                   args=(i, requests, args.batch, base + "/v1/traces", start, results))
                       for i in range(args.clients)]
            for c in clients:
                c.start()
            time.sleep(2.0 + 0.00002 * total)  # let the clients build their payloads before the clock starts
            cpu_before = proc.cpu_times()
            threading.Thread(target=sample, daemon=True).start()
            began = time.perf_counter()
            start.set()
            reports = [results.get(timeout=600) for _ in clients]
            acked = time.perf_counter() - began
            for c in clients:
                c.join()
            while True:  # /api/health is cheap: polling it does not slow the server down
                health = get_json(base + "/api/health")
                if health["inserted_spans"] >= total and health["spooled_spans"] == 0:
                    break
                if time.perf_counter() - began > 900:
                    raise SystemExit(f"spans not all stored: {health['inserted_spans']} of {total}")
                time.sleep(0.05)
            stored = time.perf_counter() - began
            status = get_json(base + "/api/status")
            counted, inserts = status["store"]["spans"], status["writer"]["inserted_groups"]
            if counted != total:
                raise SystemExit(f"the store holds {counted} spans, expected {total}")
            sampling.set()
            cpu_after = proc.cpu_times()
            rss_end = proc.memory_info().rss
        finally:
            server.terminate()
            server.wait(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rate = total / stored
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    retries = sum(r["retries"] for r in reports)
    print(f"acknowledged (durable in the spool): {total / acked:,.0f} spans/s ({acked:.2f}s, {retries} retries)")
    print(f"tracemill serve, stored in ClickHouse: {rate:,.0f} spans/s ({stored:.2f}s end to end, {inserts} inserts)")
    print(f"raw column-oriented insert baseline:   {baseline:,.0f} rows/s")
    print(f"ratio: {rate / baseline:.2f}x of the raw insert (target >= 0.5x); "
          f"absolute target 50,000 spans/s: {'met' if rate >= 50_000 else 'not met'}")
    print(f"server RSS: {rss_idle / 2**20:,.0f} MiB idle, {peak[0] / 2**20:,.0f} MiB peak, "
          f"{rss_end / 2**20:,.0f} MiB at the end; server CPU {cpu:.1f}s ({cpu / stored:.2f} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
