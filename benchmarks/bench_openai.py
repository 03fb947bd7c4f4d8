"""Per-call cost of the OpenAI integration, against the same calls uninstrumented, in one run.

The real ``openai`` client calls a local OpenAI-compatible server (``tests/integrations/
openai_server.py``, in a process of its own so it does not compete with the client for the
GIL). Each round times a block of uninstrumented calls, then the same block with
``tracemill.instrument("openai")``, so drift on a shared machine hits both sides alike. Spans
are dropped at the span processor: the figures are the cost of tracing (wrapping, capture of
messages and output, stream accumulation, span start/end), not of exporting.

Wall time includes the round trip to the server and is as noisy as the machine; the client
process's CPU time per call is the steadier measure of what tracing adds.

Run: python benchmarks/bench_openai.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import openai
from opentelemetry.sdk.trace import SpanProcessor

import tracemill

SERVER = Path(__file__).resolve().parent.parent / "tests" / "integrations" / "openai_server.py"
ANSWER = "The weather in Oslo is light snow at minus three degrees, with wind from the north and more snow tonight."
MESSAGES = [{"role": "system", "content": "You are a weather assistant."},
            {"role": "user", "content": "What is the weather in Oslo?"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


class DropSpans(SpanProcessor):
    """Ends the pipeline at the processor: nothing is queued or exported."""


def per_call_us(call: Callable[[], object], number: int) -> tuple[float, float]:
    """(wall, CPU) microseconds per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(number):
        call()
    return (time.perf_counter() - wall) / number * 1e6, (time.process_time() - cpu) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100, help="calls per timed block")
    parser.add_argument("--rounds", type=int, default=15, help="blocks per side; the median is reported")
    args = parser.parse_args(argv)

    server = subprocess.Popen([sys.executable, str(SERVER), "--text", ANSWER, "--tool-call"],
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
        tracemill.init(processor=DropSpans(), env={})

        def plain_call() -> object:
            return client.chat.completions.create(model="bench", messages=MESSAGES, tools=TOOLS)

        def stream_call() -> object:
            stream = client.chat.completions.create(model="bench", messages=MESSAGES, tools=TOOLS, stream=True,
                                                    stream_options={"include_usage": True})
            return [chunk for chunk in stream]

        chunks = len(stream_call())
        results: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for name, call in (("non-streaming", plain_call), ("streaming", stream_call)):
            per_side: dict[str, list[tuple[float, float]]] = {"plain": [], "traced": []}
            per_call_us(call, 20)  # warm up connections and caches
            for _ in range(args.rounds):
                per_side["plain"].append(per_call_us(call, args.number))
                tracemill.instrument("openai")
                per_side["traced"].append(per_call_us(call, args.number))
                tracemill.uninstrument("openai")
            results[name] = per_side
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        tracemill.shutdown()

    print(f"OpenAI integration cost per call (median of {args.rounds} blocks of {args.number} calls, "
          f"local server, spans dropped at the processor)")
    print(f"  {'call':<24}{'':6}{'uninstrumented':>16}{'instrumented':>16}{'added':>12}{'ratio':>9}")
    for name, per_side in results.items():
        label = f"{name}" + (f" ({chunks} chunks)" if name == "streaming" else "")
        for index, measure in ((0, "wall"), (1, "CPU")):
            plain = statistics.median(t[index] for t in per_side["plain"])
            traced = statistics.median(t[index] for t in per_side["traced"])
            print(f"  {label if index == 0 else '':<24}{measure:<6}{plain:>13.1f} µs{traced:>13.1f} µs"
                  f"{traced - plain:>+9.1f} µs{traced / plain:>8.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
