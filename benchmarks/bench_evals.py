"""An eval run of 1,000 decision cases against a local OpenAI-compatible server, against raw client calls.

A fresh embedded (chDB) store gets a suite of N decision cases (each a multi-turn prompt with a tool call and its
result, two tool definitions, an expected answer). The model is ``tests/integrations/openai_server.py`` in a process
of its own, answering every request with the same text. Measured in the same run, with the same concurrency:

- baseline: the same N prompts sent with the raw ``openai`` client from a thread pool, nothing else;
- eval: ``tracemill.evals.run``: suite read from the store, one traced run + LLM span per case (exported into the
  same store), scoring, results and run written.

Target: the eval of 1,000 cases under 60 s. Prints both times and their ratio.

Run: python benchmarks/bench_evals.py [--cases 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

import tracemill
import tracemill.evals as evals
from tracemill.trainer.chat import openai_messages
from tracemill.trainer.evals.cases import Case, decision_case_id
from tracemill.trainer.evals.tables import write_suite

SERVER = Path(__file__).resolve().parent.parent / "tests" / "integrations" / "openai_server.py"
ANSWER = "Your order was refunded."
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order.", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
         {"type": "function", "function": {"name": "refund", "description": "Refund an order.", "parameters": {
             "type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}}}}}]


def case(number: int) -> Case:
    prompt = [{"role": "system", "content": "You are a support agent. Look orders up before refunding."},
              {"role": "user", "content": f"Please refund order A-{number}, it arrived damaged."},
              {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {
                  "name": "lookup_order", "arguments": {"order_id": f"A-{number}"}}}]},
              {"role": "tool", "tool_call_id": "call_1", "name": "lookup_order",
               "content": f'{{"paid": {number % 97}, "status": "damaged"}}'}]
    trace_id, span_id = f"{number:032x}", f"{number:016x}"
    expected = {"output": ANSWER if number % 10 else "Refunded in full.", "tool_calls": []}
    return Case(case_id=decision_case_id(trace_id, span_id), kind="decision", source="correction", trace_id=trace_id,
                span_id=span_id, prompt=prompt, tools=TOOLS, expected=expected, group=f"task-{number % 50}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="bench-evals-"))
    server = subprocess.Popen([sys.executable, str(SERVER), "--text", ANSWER], stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        cases = [case(n) for n in range(args.cases)]
        client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)

        def raw(c: Case) -> object:
            return client.chat.completions.create(model="bench", messages=openai_messages(c.prompt),  # type: ignore[arg-type]
                                                  tools=c.tools, temperature=0)  # type: ignore[arg-type]

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(raw, cases[:50]))  # warm up connections
            started = time.perf_counter()
            list(pool.map(raw, cases))
            baseline_s = time.perf_counter() - started
        with tracemill.Store.open(f"chdb://{directory / 'store'}") as store:
            write_suite(store, "bench", cases, source="corrections", settings={})
            started = time.perf_counter()
            run = evals.run("bench", model="bench", base_url=base_url, concurrency=args.concurrency, store=store)
            eval_s = time.perf_counter() - started
            traced = store.query("SELECT count() FROM otel_traces WHERE SpanAttributes['tracemill.eval.run_id'] = "
                                 "{r:String}", {"r": run["run_id"]}).result_rows[0][0]
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{args.cases} decision cases, concurrency {args.concurrency}")
    print(f"  baseline (raw openai client calls): {baseline_s:6.2f} s")
    print(f"  tracemill eval run:                 {eval_s:6.2f} s  ({run['passed']}/{run['total']} passed, "
          f"{traced} traced runs)")
    print(f"  ratio eval / baseline: {eval_s / baseline_s:.2f}x; target under 60 s: "
          f"{'met' if eval_s < 60 else 'MISSED'}")
    return 0 if eval_s < 60 else 1


if __name__ == "__main__":
    raise SystemExit(main())
